package expr

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// value is an intermediate result: an array of the batch's length, owned by
// whoever holds the value (release it), or a constant scalar, which belongs
// to the compiled program and is shared by concurrent evaluations (never
// released).
type value struct {
	arr arrow.Array
	sc  scalar.Scalar
}

func (v value) release() {
	if v.arr != nil {
		v.arr.Release()
	}
}

func (v value) dtype() arrow.DataType {
	if v.arr != nil {
		return v.arr.DataType()
	}
	return v.sc.DataType()
}

// datum wraps v for a compute call without taking a reference: the datum
// must not be released.
func (v value) datum() compute.Datum {
	if v.arr != nil {
		return &compute.ArrayDatum{Value: v.arr.Data()}
	}
	return &compute.ScalarDatum{Value: v.sc}
}

// nullScalar reports whether v is a constant NULL.
func (v value) nullScalar() bool { return v.arr == nil && !v.sc.IsValid() }

// evaluator is the state of one evaluation over one batch.
type evaluator struct {
	ctx context.Context // carries mem for compute kernels
	mem memory.Allocator
	rec arrow.RecordBatch // nil when folding constants
	n   int               // rows
	// fold makes constants evaluate to arrays of length n, so that every
	// kernel sees at least one array (used to fold constant subtrees).
	fold bool
}

// node is a checked, typed expression ready to evaluate. eval returns a value
// the caller owns.
type node interface {
	dtype() arrow.DataType
	eval(ev *evaluator) (value, error)
}

// constNode is a constant: a literal or a folded constant subtree.
type constNode struct{ sc scalar.Scalar }

func (n *constNode) dtype() arrow.DataType { return n.sc.DataType() }

func (n *constNode) eval(ev *evaluator) (value, error) {
	if ev.fold {
		arr, err := broadcast(ev.mem, n.sc, ev.n)
		return value{arr: arr}, err
	}
	return value{sc: n.sc}, nil
}

// colNode reads column idx of the batch, by reference.
type colNode struct {
	idx int
	dt  arrow.DataType
}

func (n *colNode) dtype() arrow.DataType { return n.dt }

func (n *colNode) eval(ev *evaluator) (value, error) {
	arr := ev.rec.Column(n.idx)
	arr.Retain()
	return value{arr: arr}, nil
}

// callNode calls an arrow compute function on its arguments' values.
type callNode struct {
	fn   string
	opts compute.FunctionOptions // read-only; nil for none
	args []node
	dt   arrow.DataType
	src  string // the source text, for run-time errors
}

func (n *callNode) dtype() arrow.DataType { return n.dt }

func (n *callNode) eval(ev *evaluator) (value, error) {
	var buf [3]value
	vals := buf[:0]
	defer func() {
		for _, v := range vals {
			v.release()
		}
	}()
	for _, a := range n.args {
		v, err := a.eval(ev)
		if err != nil {
			return value{}, err
		}
		vals = append(vals, v)
	}
	return ev.call(n.src, n.fn, n.opts, vals...)
}

// call runs compute function fn over args (borrowed) and returns its result.
func (ev *evaluator) call(src, fn string, opts compute.FunctionOptions, args ...value) (value, error) {
	if opts == nil {
		if v, ok, err := ev.fastCall(src, fn, args); ok {
			return v, err
		}
	} else if co, isCast := opts.(*compute.CastOptions); isCast && fn == "cast" && len(args) == 1 {
		if v, ok := ev.fastCast(co, args[0]); ok {
			return v, nil
		}
	}
	var buf [3]compute.Datum
	ds := buf[:0]
	for _, a := range args {
		if a.arr != nil && a.arr.DataType().ID() == arrow.BOOL && a.arr.Data().Offset() != 0 {
			a.arr.Retain()
			c := compactBool(ev.mem, a.arr)
			defer c.Release()
			a = value{arr: c}
		}
		ds = append(ds, a.datum())
	}
	out, err := compute.CallFunction(ev.ctx, fn, opts, ds...)
	if err != nil {
		return value{}, fmt.Errorf("expr: %s: %w", src, err)
	}
	return ev.fromDatum(out)
}

// fromDatum takes ownership of a compute result.
func (ev *evaluator) fromDatum(d compute.Datum) (value, error) {
	defer d.Release()
	switch d := d.(type) {
	case *compute.ArrayDatum:
		return value{arr: d.MakeArray()}, nil
	case *compute.ScalarDatum:
		arr, err := broadcast(ev.mem, d.Value, ev.n)
		return value{arr: arr}, err
	}
	return value{}, fmt.Errorf("expr: unexpected %s result from a compute kernel", d.Kind())
}

// materialize turns v into an array of the batch's length; it takes over v.
// evalArray evaluates x as an array of the batch's rows (a constant is
// broadcast); the caller releases it.
func (ev *evaluator) evalArray(x node) (arrow.Array, error) {
	v, err := x.eval(ev)
	if err != nil {
		return nil, err
	}
	arr, err := ev.materialize(v)
	if err != nil {
		v.release()
		return nil, err
	}
	return arr, nil
}

func (ev *evaluator) materialize(v value) (arrow.Array, error) {
	if v.arr != nil {
		return v.arr, nil
	}
	return broadcast(ev.mem, v.sc, ev.n)
}

// betweenNode is x BETWEEN lo AND hi, evaluating x once.
type betweenNode struct {
	x, lo, hi node
	src       string
}

func (n *betweenNode) dtype() arrow.DataType { return tBool }

func (n *betweenNode) eval(ev *evaluator) (value, error) {
	var vals [3]value
	defer func() {
		for _, v := range vals {
			v.release()
		}
	}()
	for i, a := range []node{n.x, n.lo, n.hi} {
		v, err := a.eval(ev)
		if err != nil {
			return value{}, err
		}
		vals[i] = v
	}
	ge, err := ev.call(n.src, "greater_equal", nil, vals[0], vals[1])
	if err != nil {
		return value{}, err
	}
	defer ge.release()
	le, err := ev.call(n.src, "less_equal", nil, vals[0], vals[2])
	if err != nil {
		return value{}, err
	}
	defer le.release()
	return ev.call(n.src, "and_kleene", nil, ge, le)
}

// inListNode is x IN (e1, e2, ...) with non-constant elements: an OR of
// equalities, evaluating x once. (A constant list uses the is_in kernel.)
type inListNode struct {
	x    node
	list []node
	src  string
}

func (n *inListNode) dtype() arrow.DataType { return tBool }

func (n *inListNode) eval(ev *evaluator) (value, error) {
	x, err := n.x.eval(ev)
	if err != nil {
		return value{}, err
	}
	defer x.release()
	var acc value
	for i, e := range n.list {
		v, err := e.eval(ev)
		if err != nil {
			acc.release()
			return value{}, err
		}
		eq, err := ev.call(n.src, "equal", nil, x, v)
		v.release()
		if err != nil {
			acc.release()
			return value{}, err
		}
		if i == 0 {
			acc = eq
			continue
		}
		next, err := ev.call(n.src, "or_kleene", nil, acc, eq)
		acc.release()
		eq.release()
		if err != nil {
			return value{}, err
		}
		acc = next
	}
	return acc, nil
}
