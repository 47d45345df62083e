package stateful

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Keys. The hash operators (aggregate, join, distinct, dedupe,
// repartition) all need the same three things of the key columns of a
// batch: a hash per row, equality between a row and a key seen before, and
// the keys given back as Arrow columns. They get them from one row format:
// each row's key columns are encoded into one byte string, column after
// column, each a validity byte (0 null, 1 valid) followed, when valid, by
// the value — fixed-width values as their little-endian bytes, strings and
// binaries as a uvarint length and the bytes, a dictionary column as its
// value. Two rows have the same key exactly when their strings are equal,
// so one hash and one bytes.Equal serve every type and every number of
// columns, and NULL is a value like any other (SQL's GROUP BY puts the
// nulls in one group; a join, where NULL never matches, asks KeyRows.Null).
//
// Floats are canonical before they are encoded: -0 is 0 and every NaN is
// the one NaN, so they group as DuckDB groups them.
//
// The encoding is per type, not per value: a join whose two sides have
// keys of different types (int32 and int64) must cast them to one type
// first.

// keySeed is the process's hash seed: every table and every partitioning
// of a run hashes alike, so a row hashed by a repartition lands where the
// table built from the same key looks for it.
var keySeed = maphash.MakeSeed()

// HashKey is the hash the tables use for an encoded key.
func HashKey(key []byte) uint64 { return maphash.Bytes(keySeed, key) }

// Partition maps a key hash to one of n partitions. It uses the high bits,
// the tables use the low ones, so a partition's table is not left with
// one residue class of slots.
func Partition(hash uint64, n int) int {
	return int((hash >> 32) * uint64(n) >> 32)
}

// Lane maps a key hash to one of n lanes of a repartition. It uses bits
// 24 to 55, neither those Partition takes first (so the 16 spill
// partitions of an aggregate behind a repartition by the same keys are all
// used) nor the lowest, which place a key in a table.
func Lane(hash uint64, n int) int {
	return int(uint64(uint32(hash>>24)) * uint64(n) >> 32)
}

// keyColumn is how one key column is encoded.
type keyColumn struct {
	typ   arrow.DataType // the column's type as it arrives
	out   arrow.DataType // the type KeyArrays gives back (a dictionary's value type)
	width int            // fixed bytes of a valid value; -1 for var-length
	float int            // 32 or 64 when the value is a float to canonicalize
	dict  *KeyEncoder    // the value encoder of a dictionary column
}

// KeyEncoder turns the key columns of batches into KeyRows. It is
// immutable once made and may be shared by goroutines.
type KeyEncoder struct {
	cols []keyColumn
	// fixed is the encoded size of a row when every column has a fixed
	// width and every value is valid, and the fixed part otherwise.
	fixed int
	// allFixed is set when no column has var-length values.
	allFixed bool
}

// NewKeyEncoder makes the encoder of key columns of the given types, or
// says which type cannot be a key.
func NewKeyEncoder(types []arrow.DataType) (*KeyEncoder, error) {
	e := &KeyEncoder{allFixed: true}
	for i, t := range types {
		c, err := keyColumnOf(t)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		e.cols = append(e.cols, c)
		e.fixed++ // the validity byte
		if c.width >= 0 {
			e.fixed += c.width
		} else {
			e.allFixed = false
		}
	}
	return e, nil
}

// KeyTypeOK says whether a column of type t can be a key, and why not.
func KeyTypeOK(t arrow.DataType) error {
	_, err := keyColumnOf(t)
	return err
}

func keyColumnOf(t arrow.DataType) (keyColumn, error) {
	c := keyColumn{typ: t, out: t}
	switch t.ID() {
	case arrow.BOOL, arrow.NULL:
		c.width = 1
		if t.ID() == arrow.NULL {
			c.width = 0
		}
	case arrow.FLOAT32:
		c.width, c.float = 4, 32
	case arrow.FLOAT64:
		c.width, c.float = 8, 64
	case arrow.INT8, arrow.UINT8, arrow.INT16, arrow.UINT16, arrow.INT32, arrow.UINT32,
		arrow.INT64, arrow.UINT64, arrow.DATE32, arrow.DATE64, arrow.TIME32, arrow.TIME64,
		arrow.TIMESTAMP, arrow.DURATION, arrow.DECIMAL128, arrow.DECIMAL256, arrow.FIXED_SIZE_BINARY,
		arrow.INTERVAL_MONTHS, arrow.INTERVAL_DAY_TIME, arrow.INTERVAL_MONTH_DAY_NANO:
		c.width = t.(arrow.FixedWidthDataType).Bytes()
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY, arrow.STRING_VIEW, arrow.BINARY_VIEW:
		c.width = -1
	case arrow.DICTIONARY:
		dt := t.(*arrow.DictionaryType)
		v, err := NewKeyEncoder([]arrow.DataType{dt.ValueType})
		if err != nil {
			return c, err
		}
		c.dict, c.out = v, dt.ValueType
		c.width = -1 // its values are copied as encoded, whatever they are
	default:
		return c, fmt.Errorf("a %s column cannot be a key (keys are booleans, numbers, decimals, strings, binaries, dictionaries of those, dates, times, timestamps, durations and intervals)", t)
	}
	return c, nil
}

// KeyRows are the encoded keys of one batch's rows: row i is
// Data[Offs[i]:Offs[i+1]], its hash Hash[i]. A KeyRows is reused from
// batch to batch; its slices are valid until the next Encode into it.
type KeyRows struct {
	Data []byte
	Offs []int32
	Hash []uint64
	// anyNull[i] is set when one of row i's key columns is null.
	anyNull []bool
	pos     []int32    // scratch: the write cursor of each row
	dicts   []*KeyRows // scratch: the encoded values of dictionary key column i
}

// N is the number of rows.
func (r *KeyRows) N() int { return len(r.Hash) }

// Row is row i's encoded key.
func (r *KeyRows) Row(i int) []byte { return r.Data[r.Offs[i]:r.Offs[i+1]] }

// Null says whether one of row i's key columns is null: such a row never
// matches in a join.
func (r *KeyRows) Null(i int) bool { return r.anyNull[i] }

// Encode encodes the rows of cols (the key columns of one batch, in the
// encoder's order and types) into r, hashes included.
func (e *KeyEncoder) Encode(cols []arrow.Array, r *KeyRows) error {
	if len(cols) != len(e.cols) {
		return fmt.Errorf("stateful: %d key columns, the encoder has %d", len(cols), len(e.cols))
	}
	n := 0
	if len(cols) > 0 {
		n = cols[0].Len()
	}
	for i, c := range cols {
		if c.Len() != n {
			return fmt.Errorf("stateful: key column %d has %d rows, column 1 %d", i+1, c.Len(), n)
		}
		if !arrow.TypeEqual(c.DataType(), e.cols[i].typ) {
			return fmt.Errorf("stateful: key column %d is %s, the encoder's %s", i+1, c.DataType(), e.cols[i].typ)
		}
	}
	r.Offs = grow(r.Offs, n+1)
	r.Hash = grow(r.Hash, n)
	r.anyNull = grow(r.anyNull, n)
	clear(r.anyNull)
	r.pos = grow(r.pos, n)

	// The size of every row: the fixed part, plus the var-length values.
	total := int64(0)
	if e.allFixed {
		for i := 0; i <= n; i++ {
			r.Offs[i] = int32(i * e.fixed)
		}
		total = int64(n * e.fixed)
	} else {
		lens := r.pos // the cursors are lengths for a moment
		for i := range n {
			lens[i] = int32(e.fixed)
		}
		for ci, c := range e.cols {
			if c.width < 0 {
				if err := e.addVarLens(ci, cols[ci], lens, r); err != nil {
					return err
				}
			}
		}
		r.Offs[0] = 0
		for i := range n {
			total += int64(lens[i])
			if total > math.MaxInt32 {
				return fmt.Errorf("stateful: the keys of one batch take more than 2 GiB encoded")
			}
			r.Offs[i+1] = int32(total)
		}
	}
	r.Data = grow(r.Data, int(total))
	copy(r.pos, r.Offs[:n])
	for ci, c := range e.cols {
		e.encodeColumn(ci, c, cols[ci], r)
	}
	for i := range n {
		r.Hash[i] = maphash.Bytes(keySeed, r.Data[r.Offs[i]:r.Offs[i+1]])
	}
	return nil
}

// addVarLens adds the var-length part of column ci to lens.
func (e *KeyEncoder) addVarLens(ci int, a arrow.Array, lens []int32, r *KeyRows) error {
	c := e.cols[ci]
	if c.dict != nil {
		d := a.(*array.Dictionary)
		for len(r.dicts) <= ci {
			r.dicts = append(r.dicts, nil)
		}
		if r.dicts[ci] == nil {
			r.dicts[ci] = &KeyRows{}
		}
		dr := r.dicts[ci]
		// The dictionary's values are encoded once per batch; a row
		// copies its value's encoding (validity byte included, then
		// dropped: the row's own validity byte says null).
		if err := c.dict.Encode([]arrow.Array{d.Dictionary()}, dr); err != nil {
			return err
		}
		for i := range lens {
			if d.IsValid(i) {
				k := d.GetValueIndex(i)
				if k < 0 || k >= dr.N() {
					return fmt.Errorf("stateful: dictionary index %d out of range (%d values)", k, dr.N())
				}
				if dr.anyNull[k] {
					continue // a null value of the dictionary is a null key
				}
				lens[i] += dr.Offs[k+1] - dr.Offs[k] - 1
			}
		}
		return nil
	}
	for i := range lens {
		if a.IsValid(i) {
			l := len(varValue(a, i))
			lens[i] += int32(uvarintLen(uint64(l)) + l)
		}
	}
	return nil
}

// varValue is the bytes of a string or binary value.
func varValue(a arrow.Array, i int) []byte {
	switch a := a.(type) {
	case *array.String:
		o := a.ValueOffsets()
		return a.ValueBytes()[o[i]-o[0] : o[i+1]-o[0]]
	case *array.Binary:
		return a.Value(i)
	case *array.LargeString:
		o := a.ValueOffsets()
		return a.ValueBytes()[o[i]-o[0] : o[i+1]-o[0]]
	case *array.LargeBinary:
		return a.Value(i)
	case *array.StringView:
		return []byte(a.Value(i))
	case *array.BinaryView:
		return a.Value(i)
	}
	panic(fmt.Sprintf("stateful: %T is not a var-length key", a))
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// encodeColumn writes column c of every row at the rows' cursors.
func (e *KeyEncoder) encodeColumn(ci int, c keyColumn, a arrow.Array, r *KeyRows) {
	n := a.Len()
	data, pos := r.Data, r.pos
	valid := func(i int) bool { return a.IsValid(i) }
	if a.NullN() == 0 {
		valid = func(int) bool { return true }
	}
	switch {
	case c.dict != nil:
		d := a.(*array.Dictionary)
		dr := r.dicts[ci]
		for i := range n {
			p := pos[i]
			if !d.IsValid(i) || dr.anyNull[d.GetValueIndex(i)] {
				data[p] = 0
				pos[i] = p + 1
				r.anyNull[i] = true
				continue
			}
			v := dr.Row(d.GetValueIndex(i))
			pos[i] = p + int32(copy(data[p:], v))
		}
	case c.width < 0:
		var tmp [binary.MaxVarintLen64]byte
		for i := range n {
			p := pos[i]
			if !valid(i) {
				data[p] = 0
				pos[i] = p + 1
				r.anyNull[i] = true
				continue
			}
			data[p] = 1
			p++
			v := varValue(a, i)
			k := binary.PutUvarint(tmp[:], uint64(len(v)))
			p += int32(copy(data[p:], tmp[:k]))
			pos[i] = p + int32(copy(data[p:], v))
		}
	case c.typ.ID() == arrow.BOOL:
		b := a.(*array.Boolean)
		for i := range n {
			p := pos[i]
			if !valid(i) {
				data[p], data[p+1] = 0, 0
				r.anyNull[i] = true
			} else {
				data[p] = 1
				data[p+1] = 0
				if b.Value(i) {
					data[p+1] = 1
				}
			}
			pos[i] = p + 2
		}
	default:
		w := c.width
		var vals []byte
		if w > 0 {
			vals = a.Data().Buffers()[1].Bytes()[a.Data().Offset()*w:]
		}
		for i := range n {
			p := pos[i]
			dst := data[p+1 : p+1+int32(w)]
			if !valid(i) || a.DataType().ID() == arrow.NULL {
				data[p] = 0
				clear(dst) // a null's value bytes are zero, so nulls are equal
				r.anyNull[i] = true
			} else {
				data[p] = 1
				copy(dst, vals[i*w:(i+1)*w])
				canonFloat(dst, c.float)
			}
			pos[i] = p + 1 + int32(w)
		}
	}
}

// canonFloat makes -0 into 0 and every NaN into one NaN, in place.
func canonFloat(b []byte, bits int) {
	switch bits {
	case 32:
		f := math.Float32frombits(binary.LittleEndian.Uint32(b))
		if f == 0 {
			binary.LittleEndian.PutUint32(b, 0)
		} else if f != f {
			binary.LittleEndian.PutUint32(b, 0x7fc00000)
		}
	case 64:
		f := math.Float64frombits(binary.LittleEndian.Uint64(b))
		if f == 0 {
			binary.LittleEndian.PutUint64(b, 0)
		} else if math.IsNaN(f) {
			binary.LittleEndian.PutUint64(b, 0x7ff8000000000001)
		}
	}
}

// OutTypes are the types of the columns KeyArrays gives back: the key
// columns' types, a dictionary's value type in place of the dictionary.
func (e *KeyEncoder) OutTypes() []arrow.DataType {
	out := make([]arrow.DataType, len(e.cols))
	for i, c := range e.cols {
		out[i] = c.out
	}
	return out
}

// Decode builds the key columns of the encoded keys given, one row each,
// from mem. The caller releases the arrays.
func (e *KeyEncoder) Decode(mem memory.Allocator, keys [][]byte) (cols []arrow.Array, err error) {
	n := len(keys)
	cur := make([]int, n) // the read cursor in each key
	defer func() {
		if r := recover(); r != nil {
			for _, c := range cols {
				if c != nil {
					c.Release()
				}
			}
			cols = nil
			err = fmt.Errorf("stateful: a stored key does not decode: %v", r)
		}
	}()
	for _, c := range e.cols {
		cols = append(cols, decodeColumn(mem, c, keys, cur))
	}
	return cols, nil
}

// decodeColumn reads one column of every key at the cursors, advancing
// them.
func decodeColumn(mem memory.Allocator, c keyColumn, keys [][]byte, cur []int) arrow.Array {
	n := len(keys)
	if c.dict != nil {
		// A dictionary row holds its value encoded as the value column
		// (that encoding's validity byte is the row's): decode it as
		// that column, a null row as a null of it.
		inner := c.dict.cols[0]
		null := make([]byte, 1+max(inner.width, 0))
		rows := make([][]byte, n)
		for i, k := range keys {
			if k[cur[i]] == 0 {
				rows[i] = null
			} else {
				rows[i] = k[cur[i]:]
			}
		}
		sub := make([]int, n)
		a := decodeColumn(mem, inner, rows, sub)
		for i, k := range keys {
			if k[cur[i]] == 0 {
				cur[i]++ // a null row is its validity byte alone
			} else {
				cur[i] += sub[i]
			}
		}
		return a
	}
	validity := memory.NewResizableBuffer(mem)
	validity.Resize(int(bitutil.BytesForBits(int64(n))))
	vb := validity.Bytes()
	clear(vb)
	nulls := 0
	isValid := func(i int) bool {
		k := keys[i]
		ok := k[cur[i]] == 1
		cur[i]++
		if ok {
			bitutil.SetBit(vb, i)
		} else {
			nulls++
		}
		return ok
	}
	if c.width < 0 {
		return decodeVar(mem, c, keys, cur, validity, isValid, &nulls)
	}
	values := memory.NewResizableBuffer(mem)
	switch {
	case c.typ.ID() == arrow.BOOL:
		values.Resize(int(bitutil.BytesForBits(int64(n))))
		bb := values.Bytes()
		clear(bb)
		for i := range n {
			isValid(i)
			if keys[i][cur[i]] == 1 {
				bitutil.SetBit(bb, i)
			}
			cur[i]++
		}
	default:
		w := c.width
		values.Resize(n * w)
		vals := values.Bytes()
		for i := range n {
			isValid(i)
			copy(vals[i*w:(i+1)*w], keys[i][cur[i]:cur[i]+w])
			cur[i] += w
		}
	}
	bufs := []*memory.Buffer{validity, values}
	if c.typ.ID() == arrow.NULL {
		bufs = []*memory.Buffer{nil}
		validity.Release()
		values.Release()
		nulls = n
	}
	d := array.NewData(c.out, n, bufs, nil, nulls, 0)
	a := array.MakeFromData(d)
	d.Release()
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
	return a
}

// decodeVar reads a var-length column (a dictionary's value too).
func decodeVar(mem memory.Allocator, c keyColumn, keys [][]byte, cur []int, validity *memory.Buffer, isValid func(int) bool, nulls *int) arrow.Array {
	large := c.out.ID() == arrow.LARGE_STRING || c.out.ID() == arrow.LARGE_BINARY
	view := c.out.ID() == arrow.STRING_VIEW || c.out.ID() == arrow.BINARY_VIEW
	size := 0
	type span struct{ off, n int }
	spans := make([]span, len(keys))
	for i := range keys {
		if !isValid(i) {
			continue
		}
		l, k := binary.Uvarint(keys[i][cur[i]:])
		if k <= 0 {
			panic("bad length")
		}
		spans[i] = span{cur[i] + k, int(l)}
		cur[i] += k + int(l)
		size += int(l)
	}
	if view {
		defer validity.Release()
		b := array.NewBuilder(mem, c.out)
		defer b.Release()
		for i := range keys {
			if bitutil.BitIsSet(validity.Bytes(), i) {
				v := keys[i][spans[i].off : spans[i].off+spans[i].n]
				if c.out.ID() == arrow.STRING_VIEW {
					b.(*array.StringViewBuilder).Append(string(v))
				} else {
					b.(*array.BinaryViewBuilder).Append(v)
				}
			} else {
				b.AppendNull()
			}
		}
		return b.NewArray()
	}
	offsets := memory.NewResizableBuffer(mem)
	data := memory.NewResizableBuffer(mem)
	data.Resize(size)
	db := data.Bytes()
	if large {
		offsets.Resize((len(keys) + 1) * 8)
	} else {
		offsets.Resize((len(keys) + 1) * 4)
	}
	ob := offsets.Bytes()
	at := 0
	for i := range keys {
		if large {
			binary.LittleEndian.PutUint64(ob[i*8:], uint64(at))
		} else {
			binary.LittleEndian.PutUint32(ob[i*4:], uint32(at))
		}
		at += copy(db[at:], keys[i][spans[i].off:spans[i].off+spans[i].n])
	}
	if large {
		binary.LittleEndian.PutUint64(ob[len(keys)*8:], uint64(at))
	} else {
		binary.LittleEndian.PutUint32(ob[len(keys)*4:], uint32(at))
	}
	bufs := []*memory.Buffer{validity, offsets, data}
	d := array.NewData(c.out, len(keys), bufs, nil, *nulls, 0)
	a := array.MakeFromData(d)
	d.Release()
	for _, b := range bufs {
		b.Release()
	}
	return a
}

// grow returns s with length n, reusing its array when it is big enough.
func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n, max(n, 2*cap(s)))
}

// NoKey is the id Find gives a row whose key the table does not hold.
const NoKey = ^uint32(0)

// KeyTable maps encoded keys to dense ids 0, 1, 2, … in the order they
// were first inserted, an open-addressing table with linear probing over
// (hash, id) slots and the keys stored end to end in one byte slice. Its
// memory is Go memory charged to the operator's budget through charge
// before it grows (Bytes says how much it holds), so an operator learns
// it must spill before the table takes what it may not have. A table is
// used by one goroutine.
type KeyTable struct {
	slots  []keySlot
	mask   uint64
	keys   []byte
	offs   []int64 // key id's bytes are keys[offs[id]:offs[id+1]]
	hashes []uint64
	// charge asks the budget for n more bytes (n < 0 gives back); nil
	// charges nothing.
	charge  func(n int64) error
	charged int64
	// flen is the length of every key when they all have one (fixed-width
	// key columns), -1 when they differ: key id then starts at id*flen,
	// with no load of offs on the probe path.
	flen int
}

// equal says whether key id is key.
func (t *KeyTable) equal(id uint32, key []byte) bool {
	n := t.flen
	if n <= 0 {
		return bytes.Equal(t.keys[t.offs[id]:t.offs[id+1]], key)
	}
	if len(key) != n {
		return false
	}
	k := t.keys[int(id)*n : int(id)*n+n]
	if n < 8 || n > 16 {
		return bytes.Equal(k, key)
	}
	// 8 to 16 bytes (a valid int64, date or timestamp key is 9): two
	// words, the second overlapping the first when n < 16.
	le := binary.LittleEndian
	return le.Uint64(k) == le.Uint64(key) && le.Uint64(k[n-8:]) == le.Uint64(key[n-8:])
}

type keySlot struct {
	hash uint32 // the hash's low 32 bits, to skip most compares
	id   uint32 // id+1; 0 is an empty slot
}

// NewKeyTable makes an empty table whose growth is charged through charge
// (nil for none).
func NewKeyTable(charge func(n int64) error) *KeyTable {
	return &KeyTable{offs: []int64{0}, charge: charge}
}

// Len is the number of keys held.
func (t *KeyTable) Len() int { return len(t.hashes) }

// Key is key id's encoding; valid until the table grows.
func (t *KeyTable) Key(id uint32) []byte { return t.keys[t.offs[id]:t.offs[id+1]] }

// Hash is key id's hash.
func (t *KeyTable) Hash(id uint32) uint64 { return t.hashes[id] }

// Bytes is the memory the table holds (and has charged).
func (t *KeyTable) Bytes() int64 { return t.charged }

// Release gives the table's memory back to the budget and empties it.
func (t *KeyTable) Release() {
	if t.charge != nil && t.charged != 0 {
		_ = t.charge(-t.charged)
	}
	*t = KeyTable{offs: []int64{0}, charge: t.charge}
}

// grow makes room for one more key of kb bytes, asking the budget for
// what it takes first; on a refusal the table is unchanged.
func (t *KeyTable) grow(kb int) error {
	n := len(t.hashes) + 1
	newSlots := len(t.slots)
	for newSlots == 0 || n*2 > newSlots {
		newSlots = max(newSlots*2, 256)
	}
	newKeys, newIDs := cap(t.keys), cap(t.hashes)
	if len(t.keys)+kb > newKeys {
		newKeys = max(2*newKeys, len(t.keys)+kb, 4096)
	}
	if n > newIDs {
		newIDs = max(2*newIDs, 256)
	}
	// The old and the new arrays are both alive while they are copied:
	// ask for the new ones in full, then give back the old ones.
	extra := int64(0)
	if newSlots != len(t.slots) {
		extra += int64(newSlots) * 8
	}
	if newKeys != cap(t.keys) {
		extra += int64(newKeys)
	}
	if newIDs != cap(t.hashes) {
		extra += int64(newIDs)*16 + 8 // hashes and offs
	}
	if t.charge != nil {
		if err := t.charge(extra); err != nil {
			return err
		}
	}
	t.charged += extra
	if newSlots != len(t.slots) {
		t.rehash(newSlots)
	}
	if newKeys != cap(t.keys) {
		t.keys = append(make([]byte, 0, newKeys), t.keys...)
	}
	if newIDs != cap(t.hashes) {
		t.hashes = append(make([]uint64, 0, newIDs), t.hashes...)
		t.offs = append(make([]int64, 0, newIDs+1), t.offs...)
	}
	held := int64(len(t.slots))*8 + int64(cap(t.keys)) + int64(cap(t.hashes))*8 + int64(cap(t.offs))*8
	if d := held - t.charged; d < 0 && t.charge != nil {
		_ = t.charge(d)
	}
	t.charged = held
	return nil
}

func (t *KeyTable) rehash(size int) {
	t.slots = make([]keySlot, size)
	t.mask = uint64(size - 1)
	for id, h := range t.hashes {
		s := h & t.mask
		for t.slots[s].id != 0 {
			s = (s + 1) & t.mask
		}
		t.slots[s] = keySlot{hash: uint32(h), id: uint32(id) + 1}
	}
}

// FindOrInsert sets ids[j] to the id of row j's key, inserting the keys
// not held yet (rows picks the rows of r to look at: nil for all, ids then
// has r.N() entries; else ids[j] is for row rows[j]). It returns how many
// of those rows it did: all of them, or, when the budget refuses the
// table more memory, the rows before the one whose key did not fit, with
// the refusal. The table is intact then: an operator spills what it holds
// and goes on from the row it stopped at.
func (t *KeyTable) FindOrInsert(r *KeyRows, rows []int32, ids []uint32) (int, error) {
	n := r.N()
	if rows != nil {
		n = len(rows)
	}
	for j := range n {
		i := j
		if rows != nil {
			i = int(rows[j])
		}
		h := r.Hash[i]
		key := r.Data[r.Offs[i]:r.Offs[i+1]]
		if len(t.slots) == 0 {
			if err := t.grow(len(key)); err != nil {
				return j, err
			}
		}
		s := h & t.mask
		for {
			sl := t.slots[s]
			if sl.id == 0 {
				if (len(t.hashes)+1)*2 > len(t.slots) || len(t.keys)+len(key) > cap(t.keys) || len(t.hashes) == cap(t.hashes) {
					if err := t.grow(len(key)); err != nil {
						return j, err
					}
					s = h & t.mask // the slots may have moved
					continue
				}
				id := uint32(len(t.hashes))
				switch {
				case id == 0:
					t.flen = len(key)
				case t.flen != len(key):
					t.flen = -1
				}
				t.slots[s] = keySlot{hash: uint32(h), id: id + 1}
				t.keys = append(t.keys, key...)
				t.offs = append(t.offs, int64(len(t.keys)))
				t.hashes = append(t.hashes, h)
				ids[j] = id
				break
			}
			if sl.hash == uint32(h) {
				id := sl.id - 1
				if t.equal(id, key) {
					ids[j] = id
					break
				}
			}
			s = (s + 1) & t.mask
		}
	}
	return n, nil
}

// Find sets ids[i] to the id of row i's key, NoKey when the table does not
// hold it (rows as in FindOrInsert).
func (t *KeyTable) Find(r *KeyRows, rows []int32, ids []uint32) {
	n := r.N()
	if rows != nil {
		n = len(rows)
	}
	for j := range n {
		i := j
		if rows != nil {
			i = int(rows[j])
		}
		ids[j] = t.find(r.Hash[i], r.Data[r.Offs[i]:r.Offs[i+1]])
	}
}

func (t *KeyTable) find(h uint64, key []byte) uint32 {
	if len(t.slots) == 0 {
		return NoKey
	}
	s := h & t.mask
	for {
		sl := t.slots[s]
		if sl.id == 0 {
			return NoKey
		}
		if sl.hash == uint32(h) {
			id := sl.id - 1
			if t.equal(id, key) {
				return id
			}
		}
		s = (s + 1) & t.mask
	}
}

// KeyArrays decodes the keys of ids [from, to) into columns of the
// encoder's OutTypes, allocated from mem.
func (t *KeyTable) KeyArrays(e *KeyEncoder, mem memory.Allocator, from, to uint32) ([]arrow.Array, error) {
	keys := make([][]byte, 0, to-from)
	for id := from; id < to; id++ {
		keys = append(keys, t.Key(id))
	}
	return e.Decode(mem, keys)
}
