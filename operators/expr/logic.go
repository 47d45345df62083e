package expr

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// NOT and IS [NOT] NULL are this package's own: arrow-go v18.8.0's "not",
// "is_null" and "is_not_null" kernels ignore the offset of a sliced input
// and return the bits of the wrong rows. Both are a single bitmap pass.

// notNode is NOT x on a boolean: the values bitmap inverted, the validity
// bitmap shared (or copied, when x is sliced).
type notNode struct{ x node }

func (n *notNode) dtype() arrow.DataType { return tBool }

func (n *notNode) eval(ev *evaluator) (value, error) {
	arr, err := ev.evalArray(n.x)
	if err != nil {
		return value{}, err
	}
	defer arr.Release()
	rows := arr.Len()
	d := arr.Data()
	out := newBuffer(ev.mem, int(bitutil.BytesForBits(int64(rows))))
	bitutil.InvertBitmap(d.Buffers()[1].Bytes(), d.Offset(), rows, out.Bytes(), 0)
	return value{arr: finishLike(ev.mem, tBool, arr, out)}, nil
}

// isNullNode is x IS NULL, or x IS NOT NULL with not set; the result has no
// nulls.
type isNullNode struct {
	x   node
	not bool
}

func (n *isNullNode) dtype() arrow.DataType { return tBool }

func (n *isNullNode) eval(ev *evaluator) (value, error) {
	arr, err := ev.evalArray(n.x)
	if err != nil {
		return value{}, err
	}
	defer arr.Release()
	rows := arr.Len()
	out := newBuffer(ev.mem, int(bitutil.BytesForBits(int64(rows))))
	ob := out.Bytes()
	switch {
	case arr.NullN() == 0, arr.NullN() == rows:
		// IS NULL is true everywhere when every row is null.
		set := (arr.NullN() == rows) != n.not
		fillBits(ob, set)
	case n.not:
		bitutil.CopyBitmap(arr.NullBitmapBytes(), arr.Data().Offset(), rows, ob, 0)
	default:
		bitutil.InvertBitmap(arr.NullBitmapBytes(), arr.Data().Offset(), rows, ob, 0)
	}
	return value{arr: finish(tBool, rows, nil, out)}, nil
}

func fillBits(b []byte, set bool) {
	v := byte(0)
	if set {
		v = 0xff
	}
	for i := range b {
		b[i] = v
	}
}

// compactBool returns a boolean array equal to a but with offset 0; it takes
// over a. arrow-go v18.8.0's boolean cast kernels read a sliced boolean
// input's values from the wrong rows, so boolean arguments of compute calls
// are compacted first (n/8 bytes: cheap).
func compactBool(mem memory.Allocator, a arrow.Array) arrow.Array {
	d := a.Data()
	if a.DataType().ID() != arrow.BOOL || d.Offset() == 0 {
		return a
	}
	defer a.Release()
	rows := a.Len()
	out := newBuffer(mem, int(bitutil.BytesForBits(int64(rows))))
	bitutil.CopyBitmap(d.Buffers()[1].Bytes(), d.Offset(), rows, out.Bytes(), 0)
	var valid *memory.Buffer
	if a.NullN() > 0 {
		valid = newValidity(mem, rows, a)
	}
	return finish(tBool, rows, valid, out)
}
