package expr

import (
	"context"
	"encoding/binary"
	"math"
	"math/bits"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Select's filter. arrow-go's FilterRecordBatch makes one compute call per
// column, and every compute call starts a goroutine and allocates its
// executor's state; with more than one P the hand-offs cost more than the
// copying. Instead the mask is turned once into the indices of the kept rows
// and each column is gathered by a tight loop over its raw buffers: every
// fixed-width primitive (integers, floats, dates, times, timestamps,
// durations), booleans, and strings and binaries with 32- or 64-bit offsets,
// with their validity bitmaps and array offsets. Other types (nested,
// dictionary, decimal...) go through arrow's filter kernel, one column at a
// time. Every buffer comes from mem and every byte handed out is written.

// keptRows returns the indices, ascending, of the rows where mask is true
// and not null, kept of them, in a buffer from mem the caller releases.
func keptRows(mem memory.Allocator, mask *array.Boolean, kept int) (*memory.Buffer, []int32) {
	n := mask.Len()
	d := mask.Data()
	vals, off := d.Buffers()[1].Bytes(), d.Offset()
	var valid []byte
	if mask.NullN() > 0 {
		valid = d.Buffers()[0].Bytes()
	}
	var tmp *memory.Buffer
	if off%8 != 0 {
		// Rare (a sliced boolean column as the predicate): realign to bit 0.
		nb := int(bitutil.BytesForBits(int64(n)))
		tmp = newBuffer(mem, 2*nb)
		defer tmp.Release()
		tb := tmp.Bytes()
		bitutil.CopyBitmap(vals, off, n, tb[:nb], 0)
		vals = tb[:nb]
		if valid != nil {
			bitutil.CopyBitmap(valid, off, n, tb[nb:], 0)
			valid = tb[nb:]
		}
	} else {
		vals = vals[off/8:]
		if valid != nil {
			valid = valid[off/8:]
		}
	}
	buf := newBuffer(mem, kept*4)
	idx := arrow.Int32Traits.CastFromBytes(buf.Bytes())[:kept]
	k := 0
	i := 0
	for ; i+64 <= n; i += 64 {
		w := binary.LittleEndian.Uint64(vals[i/8:])
		if valid != nil {
			w &= binary.LittleEndian.Uint64(valid[i/8:])
		}
		if w == ^uint64(0) {
			for j := range 64 {
				idx[k+j] = int32(i + j)
			}
			k += 64
			continue
		}
		for ; w != 0; w &= w - 1 {
			idx[k] = int32(i + bits.TrailingZeros64(w))
			k++
		}
	}
	for ; i < n; i++ {
		if bitutil.BitIsSet(vals, i) && (valid == nil || bitutil.BitIsSet(valid, i)) {
			idx[k] = int32(i)
			k++
		}
	}
	return buf, idx[:k]
}

// filterBatch returns the rows idx of rec; mask is the predicate, for the
// columns that take arrow's filter kernel.
func filterBatch(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, mask arrow.Array, idx []int32) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, col := range rec.Columns() {
		c := gatherArray(mem, col, idx)
		if c == nil {
			var err error
			if c, err = filterArray(ctx, mem, col, mask); err != nil {
				return nil, err
			}
		}
		cols[i] = c
	}
	return array.NewRecordBatch(rec.Schema(), cols, int64(len(idx))), nil
}

// filterArray filters one column with arrow's kernel, on this goroutine's
// executor settings (one goroutine per call, not per chunk).
func filterArray(ctx context.Context, mem memory.Allocator, col, mask arrow.Array) (arrow.Array, error) {
	ectx := compute.DefaultExecCtx()
	ectx.NumParallel = 1
	fctx := compute.SetExecCtx(compute.WithAllocator(ctx, mem), ectx)
	return compute.FilterArray(fctx, col, mask, compute.FilterOptions{NullSelection: compute.SelectionDropNulls})
}

// gatherArray returns the rows idx of col, or nil when col's type is not
// one gatherArray handles.
func gatherArray(mem memory.Allocator, col arrow.Array, idx []int32) arrow.Array {
	d := col.Data()
	dt := col.DataType()
	off := d.Offset()
	var values *memory.Buffer
	var extra *memory.Buffer // string data
	switch dt.ID() {
	case arrow.BOOL:
		values = gatherBits(mem, d.Buffers()[1].Bytes(), off, idx)
	case arrow.INT8, arrow.UINT8:
		values = gatherFixed[uint8](mem, d.Buffers()[1], off, idx)
	case arrow.INT16, arrow.UINT16, arrow.FLOAT16:
		values = gatherFixed[uint16](mem, d.Buffers()[1], off, idx)
	case arrow.INT32, arrow.UINT32, arrow.FLOAT32, arrow.DATE32, arrow.TIME32:
		values = gatherFixed[uint32](mem, d.Buffers()[1], off, idx)
	case arrow.INT64, arrow.UINT64, arrow.FLOAT64, arrow.DATE64, arrow.TIME64, arrow.TIMESTAMP, arrow.DURATION:
		values = gatherFixed[uint64](mem, d.Buffers()[1], off, idx)
	case arrow.STRING, arrow.BINARY:
		values, extra = gatherVar[int32](mem, d, idx)
		if values == nil {
			return nil
		}
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		values, extra = gatherVar[int64](mem, d, idx)
		if values == nil {
			return nil
		}
	default:
		return nil
	}
	var valid *memory.Buffer
	nulls := 0
	if col.NullN() > 0 {
		valid = gatherBits(mem, d.Buffers()[0].Bytes(), off, idx)
		nulls = len(idx) - bitutil.CountSetBits(valid.Bytes(), 0, len(idx))
		if nulls == 0 {
			valid.Release()
			valid = nil
		}
	}
	bufs := []*memory.Buffer{valid, values}
	if extra != nil {
		bufs = append(bufs, extra)
	}
	out := array.NewData(dt, len(idx), bufs, nil, nulls, 0)
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
	defer out.Release()
	return array.MakeFromData(out)
}

// gatherFixed gathers the values idx of a fixed-width buffer whose array
// starts at element off.
func gatherFixed[T uint8 | uint16 | uint32 | uint64](mem memory.Allocator, src *memory.Buffer, off int, idx []int32) *memory.Buffer {
	var zero T
	w := int(sizeofT(zero))
	out := newBuffer(mem, len(idx)*w)
	dst := castBytes[T](out.Bytes())[:len(idx)]
	s := castBytes[T](src.Bytes())[off:]
	for k, i := range idx {
		dst[k] = s[i]
	}
	return out
}

// gatherBits gathers the bits idx of a bitmap whose array starts at bit off.
func gatherBits(mem memory.Allocator, src []byte, off int, idx []int32) *memory.Buffer {
	out := newBuffer(mem, int(bitutil.BytesForBits(int64(len(idx)))))
	ob := out.Bytes()
	var acc byte
	for k, i := range idx {
		j := int(i) + off
		acc |= (src[j>>3] >> (j & 7) & 1) << (k & 7)
		if k&7 == 7 {
			ob[k>>3] = acc
			acc = 0
		}
	}
	if len(idx)&7 != 0 {
		ob[len(idx)>>3] = acc
	}
	return out
}

// gatherVar gathers the rows idx of a string or binary array: new offsets
// from 0 and the rows' bytes, copied. It returns nil when the result would
// not fit the offset type.
func gatherVar[O int32 | int64](mem memory.Allocator, d arrow.ArrayData, idx []int32) (offsets, data *memory.Buffer) {
	off := d.Offset()
	so := castBytes[O](d.Buffers()[1].Bytes())[off:]
	var sd []byte
	if b := d.Buffers()[2]; b != nil {
		sd = b.Bytes()
	}
	total := int64(0)
	for _, i := range idx {
		total += int64(so[i+1] - so[i])
	}
	var zero O
	if limit := int64(math.MaxInt32); sizeofT(zero) == 4 && total > limit {
		return nil, nil
	}
	offsets = newBuffer(mem, (len(idx)+1)*int(sizeofT(zero)))
	oo := castBytes[O](offsets.Bytes())[:len(idx)+1]
	data = newBuffer(mem, int(total))
	db := data.Bytes()
	pos := O(0)
	for k, i := range idx {
		oo[k] = pos
		a, b := so[i], so[i+1]
		pos += O(copy(db[pos:], sd[a:b]))
	}
	oo[len(idx)] = pos
	return offsets, data
}

func sizeofT[T any](v T) uintptr { return unsafe.Sizeof(v) }

// castBytes views b as a slice of T (arrow buffers are 64-byte aligned).
func castBytes[T any](b []byte) []T {
	if len(b) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/int(unsafe.Sizeof(z)))
}
