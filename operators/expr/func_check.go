package expr

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// Checking the arguments of the string and number functions, and the node
// that runs their kernels.

// funcNode is a call of a function whose kernel is one of this package's
// loops: run gets the arguments' values (arrays or constants, borrowed) and
// returns a new array of the batch's rows.
type funcNode struct {
	args []node
	dt   arrow.DataType
	src  string // the call as written, for run-time errors
	run  func(ev *evaluator, vals []value) (arrow.Array, error)
}

func (n *funcNode) dtype() arrow.DataType { return n.dt }

func (n *funcNode) eval(ev *evaluator) (value, error) {
	var buf [4]value
	vals, err := ev.evalArgs(n.args, buf[:0])
	if err != nil {
		return value{}, err
	}
	defer releaseAll(vals)
	arr, err := n.run(ev, vals)
	if err != nil {
		return value{}, fmt.Errorf("expr: %s: %w", n.src, err)
	}
	return value{arr: arr}, nil
}

// newFunc returns the node of call e with the given kernel, folded when
// every argument is a constant.
func (c *checker) newFunc(e *Call, dt arrow.DataType, args []node, run func(ev *evaluator, vals []value) (arrow.Array, error)) (node, error) {
	return c.foldIf(&funcNode{args: args, dt: dt, src: c.text(e), run: run}, e, args...)
}

// argString checks that argument i of e is a string (or NULL) and brings it
// to utf8; what names it in the message ("a string", "a string pattern").
// A wrong type is reported and gives a poisonNode.
func (c *checker) argString(e *Call, args []node, i int, what string) node {
	n := args[i]
	switch classOf(n.dtype()) {
	case clsNull:
		return nullOf(tString)
	case clsString:
	default:
		return c.report(typeErrf(offset(e.Args[i]), "%s needs %s, got %s", e.Name, what, c.desc(e.Args[i], n)))
	}
	x, err := c.coerce(n, tString, e.Args[i])
	if err != nil {
		return c.report(asTypeError(err, e.Args[i]))
	}
	return x
}

// argInt is argString for an integer, brought to int64.
func (c *checker) argInt(e *Call, args []node, i int, what string) node {
	n := args[i]
	switch classOf(n.dtype()) {
	case clsNull:
		return nullOf(tInt64)
	case clsInt:
	default:
		return c.report(typeErrf(offset(e.Args[i]), "%s needs %s, got %s", e.Name, what, c.desc(e.Args[i], n)))
	}
	x, err := c.coerce(n, tInt64, e.Args[i])
	if err != nil {
		return c.report(asTypeError(err, e.Args[i]))
	}
	return x
}

// argNumber is argString for a number, brought to float64 (toFloat) or
// left to its class's type (int64 or float64).
func (c *checker) argNumber(e *Call, args []node, i int, what string, toFloat bool) node {
	n := args[i]
	cls := classOf(n.dtype())
	switch {
	case cls == clsNull:
		if toFloat {
			return nullOf(tFloat64)
		}
		return nullOf(tInt64)
	case !cls.numeric():
		return c.report(typeErrf(offset(e.Args[i]), "%s needs %s, got %s", e.Name, what, c.desc(e.Args[i], n)))
	}
	dt := canonical(n.dtype())
	if toFloat {
		dt = tFloat64
	}
	x, err := c.coerce(n, dt, e.Args[i])
	if err != nil {
		return c.report(asTypeError(err, e.Args[i]))
	}
	return x
}

// argConst returns the value of argument i, which must be a constant
// string; null reports a NULL constant. A column is reported.
func (c *checker) argConst(e *Call, args []node, i int, what string) (s string, null bool, n node) {
	n = args[i]
	if poisoned(n) {
		return "", false, n
	}
	s, null, ok := constString(n)
	if !ok {
		if isNullConst(n) {
			return "", true, n
		}
		return "", false, c.report(typeErrf(offset(e.Args[i]), "%s needs %s, got %s", e.Name, what, c.desc(e.Args[i], n)))
	}
	return s, null, n
}

// asTypeError places an error of coerce at e.
func asTypeError(err error, e Expr) *TypeError {
	if te, ok := err.(*TypeError); ok {
		return te
	}
	return typeErrf(offset(e), "%v", err)
}

// anyNullConst reports whether any of ns is a NULL constant.
func anyNullConst(ns ...node) bool {
	for _, n := range ns {
		if isNullConst(n) {
			return true
		}
	}
	return false
}
