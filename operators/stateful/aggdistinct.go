package stateful

import (
	"encoding/binary"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The aggregate functions over sets of values: count(DISTINCT x), exact,
// with a set of the values' key encodings (keys.go) per group;
// approx_count_distinct(x), a HyperLogLog per group over the same
// encodings' HashKey; approx_quantile(x, q), a t-digest per group. Their
// partial states are one binary column: the set's encodings, each
// uvarint-length-prefixed, or the sketch's MarshalBinary. A group's
// memory is charged with the state's bytes (the sketches' Bytes()).

// valueKeys encodes a (one column) as keys: the same bytes for values
// DISTINCT takes as equal (NaN with NaN, -0 with 0).
type valueKeys struct {
	enc  *KeyEncoder
	rows KeyRows
}

func newValueKeys(arg arrow.DataType) valueKeys {
	enc, err := NewKeyEncoder([]arrow.DataType{arg})
	if err != nil {
		panic("stateful: " + err.Error()) // compileCall checked KeyTypeOK
	}
	return valueKeys{enc: enc}
}

func (v *valueKeys) encode(a arrow.Array) *KeyRows {
	if err := v.enc.Encode([]arrow.Array{a}, &v.rows); err != nil {
		panic("stateful: " + err.Error()) // the type was checked
	}
	return &v.rows
}

// binaryColumn builds a binary array of one value per group; nil is NULL.
func binaryColumn(mem memory.Allocator, vals [][]byte) arrow.Array {
	b := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
	defer b.Release()
	for _, v := range vals {
		if v == nil {
			b.AppendNull()
		} else {
			b.Append(v)
		}
	}
	return b.NewArray()
}

// ---- count(DISTINCT x) ----

type distinctState struct {
	keys valueKeys
	sets []map[string]struct{}
	held int64 // the sets' keys' bytes and overhead
	// A merge in passes: merge keeps the values whose hash is sub modulo
	// of (of 0: all); counted holds what earlier passes counted.
	sub, of uint64
	counted []int64
}

// slice makes merge keep only the values whose hash is sub modulo of.
func (s *distinctState) slice(sub, of uint64) { s.sub, s.of = sub, of }

// count adds the sets' sizes to counted and empties them: the end of a
// pass.
func (s *distinctState) count() {
	s.counted = growTo(s.counted, len(s.sets))
	for g, m := range s.sets {
		s.counted[g] += int64(len(m))
		s.sets[g] = nil
	}
	s.held = int64(cap(s.counted)) * 8
}

// distinctEntryBytes is a set entry's overhead beside its key's bytes (a
// map slot, a string header).
const distinctEntryBytes = 48

func newDistinctState(arg arrow.DataType) *distinctState {
	return &distinctState{keys: newValueKeys(arg)}
}

func (s *distinctState) grow(n int)   { s.sets = growTo(s.sets, n) }
func (s *distinctState) bytes() int64 { return int64(cap(s.sets))*8 + s.held }
func (s *distinctState) reset()       { *s = distinctState{keys: s.keys} }
func (s *distinctState) partialTypes() []arrow.DataType {
	return []arrow.DataType{arrow.BinaryTypes.Binary}
}

func (s *distinctState) add(g uint32, k []byte) {
	m := s.sets[g]
	if m == nil {
		m = map[string]struct{}{}
		s.sets[g] = m
	}
	if _, ok := m[string(k)]; !ok {
		m[string(k)] = struct{}{}
		s.held += int64(len(k)) + distinctEntryBytes
	}
}

func (s *distinctState) update(ids []uint32, a arrow.Array, mask []byte, _ int64) int {
	rows := s.keys.encode(a)
	for i, g := range ids {
		if on(mask, i) {
			s.add(g, rows.Row(i))
		}
	}
	return -1
}

func (s *distinctState) result(mem memory.Allocator, groups []uint32) arrow.Array {
	n := make([]int64, len(groups))
	for i, g := range groups {
		n[i] = int64(len(s.sets[g]))
		if int(g) < len(s.counted) {
			n[i] += s.counted[g]
		}
	}
	return fixedArray(mem, arrow.PrimitiveTypes.Int64, n, nil)
}

func (s *distinctState) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	vals := make([][]byte, len(groups))
	for i, g := range groups {
		b := []byte{}
		for k := range s.sets[g] {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
		}
		vals[i] = b
	}
	return []arrow.Array{binaryColumn(mem, vals)}
}

func (s *distinctState) merge(ids []uint32, cols []arrow.Array) int {
	c := cols[0].(*array.Binary)
	for i, g := range ids {
		b := c.Value(i)
		for len(b) > 0 {
			n, w := binary.Uvarint(b)
			k := b[w : w+int(n)]
			if s.of <= 1 || HashKey(k)%s.of == s.sub {
				s.add(g, k)
			}
			b = b[w+int(n):]
		}
	}
	return -1
}

// ---- approx_count_distinct(x) ----

type hllState struct {
	keys valueKeys
	hlls []*HLL
	held int64 // the sketches' Bytes()
}

func newHLLState(arg arrow.DataType) *hllState { return &hllState{keys: newValueKeys(arg)} }

func (s *hllState) grow(n int)   { s.hlls = growTo(s.hlls, n) }
func (s *hllState) bytes() int64 { return int64(cap(s.hlls))*8 + s.held }
func (s *hllState) reset()       { *s = hllState{keys: s.keys} }
func (s *hllState) partialTypes() []arrow.DataType {
	return []arrow.DataType{arrow.BinaryTypes.Binary}
}

// at is group g's sketch, made on first use.
func (s *hllState) at(g uint32) *HLL {
	h := s.hlls[g]
	if h == nil {
		h = &HLL{}
		s.hlls[g] = h
		s.held += h.Bytes()
	}
	return h
}

// change runs fn on group g's sketch, keeping held up to date.
func (s *hllState) change(g uint32, fn func(h *HLL)) {
	h := s.at(g)
	before := h.Bytes()
	fn(h)
	s.held += h.Bytes() - before
}

func (s *hllState) update(ids []uint32, a arrow.Array, mask []byte, _ int64) int {
	rows := s.keys.encode(a)
	for i, g := range ids {
		if on(mask, i) {
			s.change(g, func(h *HLL) { h.Add(HashKey(rows.Row(i))) })
		}
	}
	return -1
}

func (s *hllState) result(mem memory.Allocator, groups []uint32) arrow.Array {
	n := make([]int64, len(groups))
	for i, g := range groups {
		if h := s.hlls[g]; h != nil {
			n[i] = int64(h.Estimate())
		}
	}
	return fixedArray(mem, arrow.PrimitiveTypes.Int64, n, nil)
}

func (s *hllState) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	vals := make([][]byte, len(groups))
	for i, g := range groups {
		if h := s.hlls[g]; h != nil {
			vals[i], _ = h.MarshalBinary()
		}
	}
	return []arrow.Array{binaryColumn(mem, vals)}
}

func (s *hllState) merge(ids []uint32, cols []arrow.Array) int {
	c := cols[0].(*array.Binary)
	for i, g := range ids {
		if c.IsNull(i) {
			continue
		}
		var o HLL
		if err := o.UnmarshalBinary(c.Value(i)); err != nil {
			panic("stateful: a spilled HLL: " + err.Error()) // written by this process
		}
		s.change(g, func(h *HLL) {
			if err := h.Merge(&o); err != nil {
				panic("stateful: merging HLLs: " + err.Error()) // one precision
			}
		})
	}
	return -1
}

// ---- approx_quantile(x, q) ----

type quantileState struct {
	q    float64
	out  arrow.DataType
	tds  []*TDigest
	held int64
	tmp  []float64
}

func (s *quantileState) grow(n int)   { s.tds = growTo(s.tds, n) }
func (s *quantileState) bytes() int64 { return int64(cap(s.tds))*8 + s.held }
func (s *quantileState) reset()       { *s = quantileState{q: s.q, out: s.out} }
func (s *quantileState) partialTypes() []arrow.DataType {
	return []arrow.DataType{arrow.BinaryTypes.Binary}
}

func (s *quantileState) change(g uint32, fn func(t *TDigest)) {
	t := s.tds[g]
	if t == nil {
		t = &TDigest{}
		s.tds[g] = t
		s.held += t.Bytes()
	}
	before := t.Bytes()
	fn(t)
	s.held += t.Bytes() - before
}

func (s *quantileState) update(ids []uint32, a arrow.Array, mask []byte, _ int64) int {
	floatKernel(a, 0, ids, mask, func(ids []uint32, v []float64, mask []byte) {
		for i, g := range ids {
			if on(mask, i) {
				s.change(g, func(t *TDigest) { t.Add(v[i]) })
			}
		}
	}, &s.tmp)
	return -1
}

func (s *quantileState) result(mem memory.Allocator, groups []uint32) arrow.Array {
	b := array.NewBuilder(mem, s.out)
	defer b.Release()
	for _, g := range groups {
		t := s.tds[g]
		if t == nil || t.Count() == 0 {
			b.AppendNull()
			continue
		}
		x := t.Quantile(s.q)
		switch bb := b.(type) {
		case *array.Float64Builder:
			bb.Append(x)
		case *array.Float32Builder:
			bb.Append(float32(x))
		default:
			appendRounded(b, math.RoundToEven(x))
		}
	}
	return b.NewArray()
}

// appendRounded appends x, a whole number within the type's range (a
// quantile of its values), to an integer builder.
func appendRounded(b array.Builder, x float64) {
	switch bb := b.(type) {
	case *array.Int8Builder:
		bb.Append(int8(x))
	case *array.Int16Builder:
		bb.Append(int16(x))
	case *array.Int32Builder:
		bb.Append(int32(x))
	case *array.Int64Builder:
		bb.Append(int64(x))
	case *array.Uint8Builder:
		bb.Append(uint8(x))
	case *array.Uint16Builder:
		bb.Append(uint16(x))
	case *array.Uint32Builder:
		bb.Append(uint32(x))
	case *array.Uint64Builder:
		bb.Append(uint64(x))
	}
}

func (s *quantileState) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	vals := make([][]byte, len(groups))
	for i, g := range groups {
		if t := s.tds[g]; t != nil {
			vals[i], _ = t.MarshalBinary()
		}
	}
	return []arrow.Array{binaryColumn(mem, vals)}
}

func (s *quantileState) merge(ids []uint32, cols []arrow.Array) int {
	c := cols[0].(*array.Binary)
	for i, g := range ids {
		if c.IsNull(i) {
			continue
		}
		var o TDigest
		if err := o.UnmarshalBinary(c.Value(i)); err != nil {
			panic("stateful: a spilled t-digest: " + err.Error()) // written by this process
		}
		s.change(g, func(t *TDigest) {
			if err := t.Merge(&o); err != nil {
				panic("stateful: merging t-digests: " + err.Error())
			}
		})
	}
	return -1
}
