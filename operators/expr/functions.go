package expr

import (
	"fmt"
	"sort"

	"github.com/zflowdev/zflow/engine"
)

// funcDef is one scalar function of the language. Each area of the language
// (strings, numbers, dates) defines its functions in its own file, in an
// init function, with define.
type funcDef struct {
	name string
	// sig is the call as the docs and messages show it: "substr(s, start[, length])".
	sig string
	// min and max bound the number of arguments; max < 0 means any number ≥ min.
	min, max int
	// check types a call whose arguments have been checked (args[i] is
	// e.Args[i]) and returns the node that evaluates it. It reports a
	// wrong argument type with a *TypeError at offset(e.Args[i]).
	check func(c *checker, e *Call, args []node) (node, error)
}

// funcs holds every function by its lower-case name.
var funcs = map[string]*funcDef{}

// define adds d to funcs; defining a name twice is a programming error.
func define(d *funcDef) {
	if _, dup := funcs[d.name]; dup {
		panic("expr: function " + d.name + " defined twice")
	}
	funcs[d.name] = d
}

// funcNames returns the defined functions' names, sorted.
func funcNames() []string {
	names := make([]string, 0, len(funcs))
	for n := range funcs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// aggregates are the aggregate functions' names (the aggregate operator
// computes them): a scalar expression that calls one is told so.
var aggregates = map[string]bool{"sum": true, "count": true, "avg": true, "min": true, "max": true, "mean": true,
	"first": true, "last": true, "stddev": true, "stddev_samp": true, "stddev_pop": true, "variance": true,
	"var_samp": true, "var_pop": true, "bool_and": true, "bool_or": true,
	"approx_count_distinct": true, "approx_quantile": true}

// IsAggregate says whether name (lower-case) is an aggregate function's.
func IsAggregate(name string) bool { return aggregates[name] }

func (c *checker) call(e *Call) (node, error) {
	// The arguments are checked first, so that their errors are reported
	// whatever is wrong with the call itself.
	args := make([]node, len(e.Args))
	for i, a := range e.Args {
		if _, star := a.(*Star); star && aggregates[e.Name] {
			args[i] = poisonNode{} // count(*): the aggregate is the error
			continue
		}
		n, err := c.check(a)
		if err != nil {
			return nil, err
		}
		args[i] = n
	}
	if e.Distinct && !aggregates[e.Name] {
		return nil, typeErrf(e.Start, "DISTINCT applies to aggregate functions only, not to %s", e.Name)
	}
	if e.Filter != nil && !aggregates[e.Name] {
		return nil, typeErrf(offset(e.Filter), "FILTER (WHERE ...) applies to aggregate functions only, not to %s", e.Name)
	}
	d, ok := funcs[e.Name]
	if !ok {
		if aggregates[e.Name] {
			return nil, typeErrf(e.Start, "aggregate function %s is not allowed here", e.Name)
		}
		if s := engine.Suggest(e.Name, funcNames()); s != "" {
			return nil, typeErrf(e.Start, "unknown function %q, did you mean %q?", e.Name, s)
		}
		return nil, typeErrf(e.Start, "unknown function %q", e.Name)
	}
	if n := len(e.Args); n < d.min || (d.max >= 0 && n > d.max) {
		return nil, typeErrf(e.Start, "%s takes %s, got %d: %s", e.Name, arityText(d.min, d.max), n, d.sig)
	}
	if poisoned(args...) {
		return poisonNode{}, nil
	}
	return d.check(c, e, args)
}

// arityText renders an argument count range: "1 argument", "2 or 3
// arguments", "at least 1 argument".
func arityText(min, max int) string {
	plural := func(n int) string {
		if n == 1 {
			return "1 argument"
		}
		return fmt.Sprintf("%d arguments", n)
	}
	switch {
	case max < 0:
		return "at least " + plural(min)
	case min == max:
		return plural(min)
	case max == min+1:
		return fmt.Sprintf("%d or %s", min, plural(max))
	}
	return fmt.Sprintf("%d to %s", min, plural(max))
}

func init() {
	define(&funcDef{name: "coalesce", sig: "coalesce(a, b, ...)", min: 1, max: -1, check: (*checker).coalesce})
	define(&funcDef{name: "abs", sig: "abs(x)", min: 1, max: 1, check: checkAbs})
	for name := range strFuncs {
		define(&funcDef{name: name, sig: name + "(s)", min: 1, max: 1, check: checkStrFunc})
	}
}

func checkAbs(c *checker, e *Call, args []node) (node, error) {
	x, cls := args[0], classOf(args[0].dtype())
	if !cls.numeric() && cls != clsNull {
		return nil, typeErrf(offset(e.Args[0]), "abs needs a number, got %s", c.desc(e.Args[0], x))
	}
	if cls == clsNull {
		return nullOf(tInt64), nil
	}
	dt := canonical(x.dtype())
	x, err := c.coerce(x, dt, e.Args[0])
	if err != nil {
		return nil, err
	}
	return c.foldIf(&callNode{fn: "abs", args: []node{x}, dt: dt, src: c.text(e)}, e, x)
}

func checkStrFunc(c *checker, e *Call, args []node) (node, error) {
	x, cls := args[0], classOf(args[0].dtype())
	if cls != clsString && cls != clsNull {
		return nil, typeErrf(offset(e.Args[0]), "%s needs a string, got %s", e.Name, c.desc(e.Args[0], x))
	}
	fn := strFuncs[e.Name]
	if cls == clsNull {
		return nullOf(fn.dtype()), nil
	}
	x, err := c.coerce(x, tString, e.Args[0])
	if err != nil {
		return nil, err
	}
	return c.foldIf(&strNode{fn: fn, x: x}, e, x)
}
