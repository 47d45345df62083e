package stateful

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// This file holds the casts that make two join key columns of different
// types comparable (commonType's): an integer to a wider integer, a number
// to a double, a timestamp to a finer unit, a date to a timestamp. They
// are written here, not taken from arrow's compute, for the gather's
// reason (gather.go): arrow runs a kernel on a goroutine of its own, where
// an allocation beyond a hard budget kills the process. Here it panics in
// the operator's goroutine, the engine fails the run, and the buffers made
// so far are released.

// castKey returns a (borrowed) as type to; the caller releases it.
func castKey(mem0 memory.Allocator, a arrow.Array, to arrow.DataType) (_ arrow.Array, err error) {
	mem := &tracked{Allocator: mem0}
	defer func() {
		if r := recover(); r != nil {
			mem.releaseAll()
			panic(r)
		}
	}()
	fw, ok := to.(arrow.FixedWidthDataType)
	if !ok {
		return nil, fmt.Errorf("join: no key cast to %s", to)
	}
	n := a.Len()
	vals := mem.newBuffer(n * fw.BitWidth() / 8)
	switch to.ID() {
	case arrow.INT16:
		err = castInts(words[int16](vals.Bytes()), a)
	case arrow.INT32:
		err = castInts(words[int32](vals.Bytes()), a)
	case arrow.INT64:
		err = castInts(words[int64](vals.Bytes()), a)
	case arrow.UINT16:
		err = castInts(words[uint16](vals.Bytes()), a)
	case arrow.UINT32:
		err = castInts(words[uint32](vals.Bytes()), a)
	case arrow.UINT64:
		err = castInts(words[uint64](vals.Bytes()), a)
	case arrow.FLOAT64:
		err = castFloats(words[float64](vals.Bytes()), a)
	case arrow.TIMESTAMP:
		err = castTimes(words[int64](vals.Bytes()), a, to.(*arrow.TimestampType).Unit)
	default:
		err = fmt.Errorf("join: no key cast from %s to %s", a.DataType(), to)
	}
	if err != nil {
		mem.releaseAll()
		return nil, err
	}
	var valid *memory.Buffer
	if a.NullN() > 0 {
		valid = mem.newBuffer(int(bitutil.BytesForBits(int64(n))))
		vb := valid.Bytes()
		clear(vb)
		for i := range n {
			if a.IsValid(i) {
				bitutil.SetBit(vb, i)
			}
		}
	}
	d := array.NewData(to, n, []*memory.Buffer{valid, vals}, nil, a.NullN(), 0)
	mem.releaseAll() // the data holds them now
	defer d.Release()
	return array.MakeFromData(d), nil
}

type keyNumber interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

func convert[S, D keyNumber](dst []D, src []S) {
	for i, v := range src {
		dst[i] = D(v)
	}
}

// castInts writes the integers of a (up to 32 bits) into dst, widened
// (commonType only widens: no value is lost).
func castInts[T int16 | int32 | int64 | uint16 | uint32 | uint64 | float64](dst []T, a arrow.Array) error {
	switch a := a.(type) {
	case *array.Int8:
		convert(dst, a.Int8Values())
	case *array.Int16:
		convert(dst, a.Int16Values())
	case *array.Int32:
		convert(dst, a.Int32Values())
	case *array.Uint8:
		convert(dst, a.Uint8Values())
	case *array.Uint16:
		convert(dst, a.Uint16Values())
	case *array.Uint32:
		convert(dst, a.Uint32Values())
	default:
		return fmt.Errorf("join: no key cast from %s to %T", a.DataType(), dst[:0])
	}
	return nil
}

// castFloats writes the numbers of a into dst as doubles.
func castFloats(dst []float64, a arrow.Array) error {
	switch a := a.(type) {
	case *array.Int64:
		convert(dst, a.Int64Values())
	case *array.Uint64:
		convert(dst, a.Uint64Values())
	case *array.Float32:
		convert(dst, a.Float32Values())
	default:
		return castInts(dst, a)
	}
	return nil
}

// castTimes writes the dates or timestamps of a into dst as timestamps of
// unit (never coarser than a's).
func castTimes(dst []int64, a arrow.Array, unit arrow.TimeUnit) error {
	scale := func(from arrow.TimeUnit) int64 {
		f := int64(1)
		for u := from; u < unit; u++ {
			f *= 1000
		}
		return f
	}
	switch a := a.(type) {
	case *array.Date32:
		f := 86400 * scale(arrow.Second)
		for i, v := range a.Date32Values() {
			dst[i] = int64(v) * f
		}
	case *array.Timestamp:
		f := scale(a.DataType().(*arrow.TimestampType).Unit)
		for i, v := range a.TimestampValues() {
			dst[i] = int64(v) * f
		}
	default:
		return fmt.Errorf("join: no key cast from %s to a timestamp", a.DataType())
	}
	return nil
}
