package stateful

import (
	"fmt"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// This file holds the gather: a new array of chosen rows of several
// arrays of one type (the batches of a sort run), each row named by its
// position slot<<32 | row. It is arrow's take over chunks, written here
// because arrow's compute runs every kernel on a goroutine of its own: an
// allocation over a hard budget panics there, where nobody can recover it
// and the process dies, while here it panics in the operator's goroutine
// and the engine fails the run with it. All memory comes from mem.
//
// Dictionary columns are gathered by their indices when every chunk has
// the same dictionary; chunks with different dictionaries are first
// concatenated (array.Concatenate unifies them) by the caller
// (newGatherer), so the gather sees one.

// gatherArray returns the rows at pos of chunks (one per slot), which all
// have type dt.
//
// An allocation beyond a hard budget panics (memory.Allocator cannot
// fail otherwise): the buffers made so far are then released before the
// panic goes on, so a failed gather leaks nothing.
func gatherArray(mem0 memory.Allocator, dt arrow.DataType, chunks []arrow.Array, pos []uint64) (_ arrow.Array, err error) {
	mem := &tracked{Allocator: mem0}
	defer func() {
		if r := recover(); r != nil {
			mem.releaseAll()
			panic(r)
		}
	}()
	n := len(pos)
	if dt.ID() == arrow.NULL {
		return array.NewNull(n), nil
	}
	valid, nulls := gatherValidity(mem, chunks, pos)
	var bufs []*memory.Buffer
	var dict arrow.ArrayData
	switch dt.ID() {
	case arrow.BOOL:
		out := mem.newBuffer(int(bitutil.BytesForBits(int64(n))))
		dst := out.Bytes()
		for i, p := range pos {
			c := chunks[p>>32]
			if bitutil.BitIsSet(c.Data().Buffers()[1].Bytes(), c.Data().Offset()+int(uint32(p))) {
				bitutil.SetBit(dst, i)
			}
		}
		bufs = []*memory.Buffer{valid, out}
	case arrow.STRING, arrow.BINARY:
		bufs = gatherBinary[int32](mem, chunks, pos, valid)
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		bufs = gatherBinary[int64](mem, chunks, pos, valid)
	case arrow.DICTIONARY:
		// The values through ArrayData, not (*array.Dictionary).Dictionary:
		// that method caches its array on first call, a write that races
		// when instances gather from the same shared chunks.
		d0 := chunks[pos[0]>>32].Data().Dictionary()
		for _, c := range chunks {
			if c.Data().Dictionary() != d0 {
				mem.releaseAll()
				return nil, fmt.Errorf("gather: dictionary chunks with different dictionaries (concatenate them first)")
			}
		}
		idxType := dt.(*arrow.DictionaryType).IndexType
		bufs = []*memory.Buffer{valid, gatherFixed(mem, idxType.(arrow.FixedWidthDataType).BitWidth()/8, chunks, pos)}
		dict = d0
	default:
		fw, ok := dt.(arrow.FixedWidthDataType)
		if !ok {
			mem.releaseAll()
			return nil, fmt.Errorf("gather: no gather for %s", dt)
		}
		bufs = []*memory.Buffer{valid, gatherFixed(mem, fw.BitWidth()/8, chunks, pos)}
	}
	var data *array.Data
	if dict != nil {
		data = array.NewDataWithDictionary(dt, n, bufs, nulls, 0, dict.(*array.Data))
	} else {
		data = array.NewData(dt, n, bufs, nil, nulls, 0)
	}
	mem.bufs = nil // the data holds them now
	for _, b := range bufs {
		releaseBuf(b)
	}
	defer data.Release()
	return array.MakeFromData(data), nil
}

// tracked remembers the buffers made through it, to release them if the
// gather panics half-way.
type tracked struct {
	memory.Allocator
	bufs []*memory.Buffer
}

func (t *tracked) newBuffer(n int) *memory.Buffer {
	b := memory.NewResizableBuffer(t.Allocator)
	t.bufs = append(t.bufs, b)
	b.Resize(n)
	return b
}

func (t *tracked) releaseAll() {
	for _, b := range t.bufs {
		b.Release()
	}
	t.bufs = nil
}

func releaseBuf(b *memory.Buffer) {
	if b != nil {
		b.Release()
	}
}

// gatherValidity is the validity bitmap of the rows at pos, nil when none
// is NULL.
func gatherValidity(mem *tracked, chunks []arrow.Array, pos []uint64) (*memory.Buffer, int) {
	any := false
	for _, c := range chunks {
		if c.NullN() > 0 {
			any = true
			break
		}
	}
	if !any {
		return nil, 0
	}
	b := mem.newBuffer(int(bitutil.BytesForBits(int64(len(pos)))))
	dst := b.Bytes()
	nulls := 0
	for i, p := range pos {
		c := chunks[p>>32]
		if c.IsValid(int(uint32(p))) {
			bitutil.SetBit(dst, i)
		} else {
			nulls++
		}
	}
	if nulls == 0 {
		mem.bufs = mem.bufs[:len(mem.bufs)-1]
		b.Release()
		return nil, 0
	}
	return b, nulls
}

// gatherFixed gathers values of width bytes.
func gatherFixed(mem *tracked, width int, chunks []arrow.Array, pos []uint64) *memory.Buffer {
	out := mem.newBuffer(width * len(pos))
	dst := out.Bytes()
	srcs := make([][]byte, len(chunks))
	for i, c := range chunks {
		d := c.Data()
		srcs[i] = d.Buffers()[1].Bytes()[d.Offset()*width:]
	}
	switch width {
	case 1:
		gatherWords[uint8](dst, srcs, pos)
	case 2:
		gatherWords[uint16](dst, srcs, pos)
	case 4:
		gatherWords[uint32](dst, srcs, pos)
	case 8:
		gatherWords[uint64](dst, srcs, pos)
	case 16:
		gatherWords[[2]uint64](dst, srcs, pos)
	default:
		for i, p := range pos {
			r := int(uint32(p))
			copy(dst[i*width:(i+1)*width], srcs[p>>32][r*width:])
		}
	}
	return out
}

func words[T any](b []byte) []T {
	var z T
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/int(unsafe.Sizeof(z)))
}

func gatherWords[T any](dst []byte, srcs [][]byte, pos []uint64) {
	d := words[T](dst)
	s := make([][]T, len(srcs))
	for i, b := range srcs {
		s[i] = words[T](b)
	}
	for i, p := range pos {
		d[i] = s[p>>32][uint32(p)]
	}
}

// gatherBinary gathers variable-width values: offsets, then bytes.
func gatherBinary[O int32 | int64](mem *tracked, chunks []arrow.Array, pos []uint64, valid *memory.Buffer) []*memory.Buffer {
	offs := make([][]O, len(chunks))
	data := make([][]byte, len(chunks))
	for i, c := range chunks {
		offs[i] = arrow.GetOffsets[O](c.Data(), 1)
		if b := c.Data().Buffers()[2]; b != nil {
			data[i] = b.Bytes()
		}
	}
	var z O
	ob := mem.newBuffer((len(pos) + 1) * int(unsafe.Sizeof(z)))
	o := words[O](ob.Bytes())
	var total O
	for i, p := range pos {
		s, r := p>>32, uint32(p)
		o[i] = total
		total += offs[s][r+1] - offs[s][r]
	}
	o[len(pos)] = total
	db := mem.newBuffer(int(total))
	dst := db.Bytes()
	for i, p := range pos {
		s, r := p>>32, uint32(p)
		copy(dst[o[i]:o[i+1]], data[s][offs[s][r]:offs[s][r+1]])
	}
	return []*memory.Buffer{valid, ob, db}
}
