package expr

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/scalar"

	"github.com/zflowdev/zflow/internal/ascii"
)

// The string functions, with DuckDB's names and semantics: substr and
// substring, replace, trim, ltrim and rtrim, concat and the || operator,
// split_part, starts_with and contains. Positions and lengths count code
// points (an invalid UTF-8 byte counts as one), as length does. Each runs
// over the whole batch with its result buffers sized up front; a constant
// argument is read once, not materialised per row.

func init() {
	define(&funcDef{name: "substr", sig: "substr(s, start[, length])", min: 2, max: 3, check: checkSubstr})
	define(&funcDef{name: "substring", sig: "substring(s, start[, length])", min: 2, max: 3, check: checkSubstr})
	define(&funcDef{name: "replace", sig: "replace(s, from, to)", min: 3, max: 3, check: checkReplace})
	for _, name := range []string{"trim", "ltrim", "rtrim"} {
		define(&funcDef{name: name, sig: name + "(s[, characters])", min: 1, max: 2, check: checkTrim})
	}
	define(&funcDef{name: "concat", sig: "concat(a, ...)", min: 1, max: -1, check: checkConcat})
	define(&funcDef{name: "split_part", sig: "split_part(s, separator, n)", min: 3, max: 3, check: checkSplitPart})
	define(&funcDef{name: "starts_with", sig: "starts_with(s, prefix)", min: 2, max: 2, check: checkStrPredicate})
	define(&funcDef{name: "contains", sig: "contains(s, needle)", min: 2, max: 2, check: checkStrPredicate})
}

// substr's offset and length must fit DuckDB's range.
const (
	substrMax = 4294967295
	substrMin = -4294967296
)

func checkSubstr(c *checker, e *Call, args []node) (node, error) {
	ns := []node{c.argString(e, args, 0, "a string")}
	ns = append(ns, c.argInt(e, args, 1, "an integer start"))
	if len(args) == 3 {
		ns = append(ns, c.argInt(e, args, 2, "an integer length"))
	}
	if poisoned(ns...) {
		return poisonNode{}, nil
	}
	if anyNullConst(ns...) {
		return nullOf(tString), nil
	}
	return c.newFunc(e, tString, ns, substrKernel)
}

// substrRange returns the code points [start, end) of substr(s, off[,
// length]) on a string of size code points, by DuckDB's rules: a positive
// off counts from 1, a negative one from the end, 0 is one before the first;
// a negative length takes the characters before off.
func substrRange(size, off, length int64, hasLen bool) (start, end int64) {
	switch {
	case off > 0:
		start = off - 1
	case off < 0:
		start = size + off
	default:
		start = -1
	}
	switch {
	case !hasLen:
		end = size
	case length >= 0:
		end = start + length
	default:
		end, start = start, start+length
	}
	start, end = min(max(start, 0), size), min(max(end, 0), size)
	if start >= end {
		return 0, 0
	}
	return start, end
}

// runeOffset returns the byte offset of code point k of b (an invalid byte
// counts as one code point); k ≤ the number of code points.
func runeOffset(b []byte, k int64) int {
	p := 0
	for ; k > 0 && p < len(b); k-- {
		if b[p] < utf8.RuneSelf {
			p++
			continue
		}
		_, n := utf8.DecodeRune(b[p:])
		p += n
	}
	return p
}

func substrKernel(ev *evaluator, vals []value) (arrow.Array, error) {
	s, off := strViewOf(vals[0]), int64ViewOf(vals[1])
	var ln int64View
	hasLen := len(vals) == 3
	if hasLen {
		ln = int64ViewOf(vals[2])
	}
	ascii := isASCIIView(&s)
	w := newStrWriter(ev.mem, ev.n, estimate(&s, ev.n))
	for i := 0; i < ev.n; i++ {
		w.row(i)
		if s.null(i) || off.null(i) || (hasLen && ln.null(i)) {
			continue
		}
		o, l := off.at(i), int64(0)
		if o > substrMax || o < substrMin {
			w.release()
			return nil, fmt.Errorf("substring offset %d is outside the supported range (%d to %d)", o, int64(substrMin), int64(substrMax))
		}
		if hasLen {
			if l = ln.at(i); l > substrMax || l < substrMin {
				w.release()
				return nil, fmt.Errorf("substring length %d is outside the supported range (%d to %d)", l, int64(substrMin), int64(substrMax))
			}
		}
		b := s.at(i)
		if ascii {
			a, z := substrRange(int64(len(b)), o, l, hasLen)
			w.write(b[a:z])
			continue
		}
		a, z := substrRange(int64(utf8.RuneCount(b)), o, l, hasLen)
		if a == z {
			continue
		}
		from := runeOffset(b, a)
		to := from + runeOffset(b[from:], z-a)
		w.write(b[from:to])
	}
	return w.finish(ev.n, ev.validityN(vals...))
}

// isASCIIView reports whether every row of s is 7-bit.
func isASCIIView(s *strView) bool {
	if s.isK {
		return ascii.Is(s.k)
	}
	return ascii.Is(s.data[s.offs[0]:s.offs[len(s.offs)-1]])
}

// estimate is the size of s over rows rows, capped for a constant (the
// writer grows if it is short).
func estimate(s *strView, rows int) int {
	if s.isK {
		return min(len(s.k)*rows, 1<<20)
	}
	return s.size()
}

func checkReplace(c *checker, e *Call, args []node) (node, error) {
	ns := []node{
		c.argString(e, args, 0, "a string"),
		c.argString(e, args, 1, "a string to find"),
		c.argString(e, args, 2, "a string to put in its place"),
	}
	if poisoned(ns...) {
		return poisonNode{}, nil
	}
	if anyNullConst(ns...) {
		return nullOf(tString), nil
	}
	return c.newFunc(e, tString, ns, replaceKernel)
}

// replaceKernel replaces every occurrence of from, left to right and not
// overlapping; an empty from changes nothing (DuckDB's rule).
func replaceKernel(ev *evaluator, vals []value) (arrow.Array, error) {
	s, from, to := strViewOf(vals[0]), strViewOf(vals[1]), strViewOf(vals[2])
	w := newStrWriter(ev.mem, ev.n, estimate(&s, ev.n))
	for i := 0; i < ev.n; i++ {
		w.row(i)
		if s.null(i) || from.null(i) || to.null(i) {
			continue
		}
		b, f, t := s.at(i), from.at(i), to.at(i)
		if len(f) == 0 {
			w.write(b)
			continue
		}
		for {
			k := bytes.Index(b, f)
			if k < 0 {
				break
			}
			w.write(b[:k])
			w.write(t)
			b = b[k+len(f):]
		}
		w.write(b)
	}
	return w.finish(ev.n, ev.validityN(vals...))
}

func checkTrim(c *checker, e *Call, args []node) (node, error) {
	ns := []node{c.argString(e, args, 0, "a string")}
	if len(args) == 2 {
		ns = append(ns, c.argString(e, args, 1, "a string of characters to remove"))
	}
	if poisoned(ns...) {
		return poisonNode{}, nil
	}
	if anyNullConst(ns...) {
		return nullOf(tString), nil
	}
	left, right := e.Name != "rtrim", e.Name != "ltrim"
	return c.newFunc(e, tString, ns, func(ev *evaluator, vals []value) (arrow.Array, error) {
		return trimKernel(ev, vals, left, right)
	})
}

// trimKernel removes the characters of the second argument (by default a
// space: only ' ', as DuckDB's trim) from the left and/or right of each
// string.
func trimKernel(ev *evaluator, vals []value, left, right bool) (arrow.Array, error) {
	s := strViewOf(vals[0])
	chars := strView{isK: true, k: []byte(" ")}
	if len(vals) == 2 {
		chars = strViewOf(vals[1])
	}
	// A constant set of ASCII characters is a table, looked up per byte.
	var table *[256]bool
	if chars.isK && ascii.Is(chars.k) {
		table = new([256]bool)
		for _, ch := range chars.k {
			table[ch] = true
		}
	}
	w := newStrWriter(ev.mem, ev.n, s.size())
	for i := 0; i < ev.n; i++ {
		w.row(i)
		if s.null(i) || chars.null(i) {
			continue
		}
		b := s.at(i)
		if table != nil {
			for left && len(b) > 0 && table[b[0]] {
				b = b[1:]
			}
			for right && len(b) > 0 && table[b[len(b)-1]] {
				b = b[:len(b)-1]
			}
		} else {
			set := chars.at(i)
			for left && len(b) > 0 {
				r, n := utf8.DecodeRune(b)
				if (r == utf8.RuneError && n <= 1) || !bytes.ContainsRune(set, r) {
					break
				}
				b = b[n:]
			}
			for right && len(b) > 0 {
				r, n := utf8.DecodeLastRune(b)
				if (r == utf8.RuneError && n <= 1) || !bytes.ContainsRune(set, r) {
					break
				}
				b = b[:len(b)-n]
			}
		}
		w.write(b)
	}
	return w.finish(ev.n, ev.validityN(vals...))
}

// stringOperand brings n, an operand of concat or ||, to a string: strings
// as they are, numbers, booleans and timestamps formatted as CAST(x AS
// string) formats them. Another type is reported.
func (c *checker) stringOperand(what string, x Expr, n node) node {
	switch cls := classOf(n.dtype()); {
	case cls == clsNull:
		if poisoned(n) {
			return n
		}
		return nullOf(tString)
	case cls == clsString:
		s, err := c.coerce(n, tString, x)
		if err != nil {
			return c.report(asTypeError(err, x))
		}
		return s
	case formatsToString(canonical(n.dtype())):
		s, err := c.foldIf(&toStringNode{x: n}, x, n)
		if err != nil {
			return c.report(asTypeError(err, x))
		}
		return s
	}
	return c.report(typeErrf(offset(x), "%s cannot make a string of %s", what, c.desc(x, n)))
}

// concatOp is a || b: NULL when either is NULL.
func (c *checker) concatOp(e *Binary) (node, error) {
	l, err := c.check(e.L)
	if err != nil {
		return nil, err
	}
	r, err := c.check(e.R)
	if err != nil {
		return nil, err
	}
	ns := []node{c.stringOperand("||", e.L, l), c.stringOperand("||", e.R, r)}
	if poisoned(ns...) {
		return poisonNode{}, nil
	}
	if anyNullConst(ns...) {
		return nullOf(tString), nil
	}
	n := &funcNode{args: ns, dt: tString, src: c.text(e), run: func(ev *evaluator, vals []value) (arrow.Array, error) {
		return concatKernel(ev, vals, false)
	}}
	return c.foldIf(n, e, ns...)
}

// checkConcat is concat(a, ...): NULL arguments are skipped, so the result
// is never NULL (DuckDB's rule; concat(NULL) is ”).
func checkConcat(c *checker, e *Call, args []node) (node, error) {
	ns := make([]node, 0, len(args))
	bad := false
	for i, a := range args {
		n := c.stringOperand("concat", e.Args[i], a)
		bad = bad || poisoned(n)
		if !isNullConst(n) {
			ns = append(ns, n)
		}
	}
	if bad {
		return poisonNode{}, nil
	}
	if len(ns) == 0 {
		return &constNode{sc: scalar.NewStringScalar("")}, nil
	}
	return c.newFunc(e, tString, ns, func(ev *evaluator, vals []value) (arrow.Array, error) {
		return concatKernel(ev, vals, true)
	})
}

// concatKernel joins its operands row by row. skipNulls is concat's rule
// (a NULL operand counts as ”); otherwise a NULL operand makes the row
// NULL (||).
func concatKernel(ev *evaluator, vals []value, skipNulls bool) (arrow.Array, error) {
	views := make([]strView, len(vals))
	size := 0
	for i, v := range vals {
		views[i] = strViewOf(v)
		size += estimate(&views[i], ev.n)
	}
	w := newStrWriter(ev.mem, ev.n, size)
	if skipNulls {
		for i := 0; i < ev.n; i++ {
			w.row(i)
			for k := range views {
				if !views[k].null(i) {
					w.write(views[k].at(i))
				}
			}
		}
		return w.finish(ev.n, nil)
	}
	valid := ev.validityN(vals...)
	var bits []byte
	if valid != nil {
		bits = valid.Bytes()
	}
	for i := 0; i < ev.n; i++ {
		w.row(i)
		if bits != nil && !bitutil.BitIsSet(bits, i) {
			continue // a NULL row holds no bytes
		}
		for k := range views {
			w.write(views[k].at(i))
		}
	}
	return w.finish(ev.n, valid)
}

func checkSplitPart(c *checker, e *Call, args []node) (node, error) {
	ns := []node{
		c.argString(e, args, 0, "a string"),
		c.argString(e, args, 1, "a string separator"),
		c.argInt(e, args, 2, "an integer part number"),
	}
	if poisoned(ns...) {
		return poisonNode{}, nil
	}
	if anyNullConst(ns...) {
		return nullOf(tString), nil
	}
	return c.newFunc(e, tString, ns, splitPartKernel)
}

// splitPartKernel returns part n of s split at sep, counting from 1, or
// from the end when n is negative; ” when there is no such part or n is 0.
// An empty separator splits s into its characters (DuckDB's rules).
func splitPartKernel(ev *evaluator, vals []value) (arrow.Array, error) {
	s, sep, part := strViewOf(vals[0]), strViewOf(vals[1]), int64ViewOf(vals[2])
	w := newStrWriter(ev.mem, ev.n, estimate(&s, ev.n))
	for i := 0; i < ev.n; i++ {
		w.row(i)
		if s.null(i) || sep.null(i) || part.null(i) {
			continue
		}
		w.write(splitPart(s.at(i), sep.at(i), part.at(i)))
	}
	return w.finish(ev.n, ev.validityN(vals...))
}

func splitPart(b, sep []byte, n int64) []byte {
	switch {
	case n == 0 || len(b) == 0:
		return nil
	case len(sep) == 0:
		size := int64(utf8.RuneCount(b))
		if n < 0 {
			n = size + n + 1
		}
		if n < 1 || n > size {
			return nil
		}
		from := runeOffset(b, n-1)
		return b[from : from+runeOffset(b[from:], 1)]
	case n > 0:
		for ; n > 1; n-- {
			k := bytes.Index(b, sep)
			if k < 0 {
				return nil
			}
			b = b[k+len(sep):]
		}
		if k := bytes.Index(b, sep); k >= 0 {
			return b[:k]
		}
		return b
	}
	for ; n < -1; n++ {
		k := bytes.LastIndex(b, sep)
		if k < 0 {
			return nil
		}
		b = b[:k]
	}
	if k := bytes.LastIndex(b, sep); k >= 0 {
		return b[k+len(sep):]
	}
	return b
}

// checkStrPredicate is starts_with(s, prefix) or contains(s, needle).
func checkStrPredicate(c *checker, e *Call, args []node) (node, error) {
	what := "a string prefix"
	if e.Name == "contains" {
		what = "a string to look for"
	}
	ns := []node{c.argString(e, args, 0, "a string"), c.argString(e, args, 1, what)}
	if poisoned(ns...) {
		return poisonNode{}, nil
	}
	if anyNullConst(ns...) {
		return nullOf(tBool), nil
	}
	match := bytes.HasPrefix
	if e.Name == "contains" {
		match = bytes.Contains
	}
	return c.newFunc(e, tBool, ns, func(ev *evaluator, vals []value) (arrow.Array, error) {
		s, x := strViewOf(vals[0]), strViewOf(vals[1])
		buf, out := newBoolBuffer(ev.mem, ev.n)
		for i := 0; i < ev.n; i++ {
			if !s.null(i) && !x.null(i) && match(s.at(i), x.at(i)) {
				out[i>>3] |= 1 << (i & 7)
			}
		}
		return finish(tBool, ev.n, ev.validityN(vals...), buf), nil
	})
}
