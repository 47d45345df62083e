package expr

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// regexp_matches and regexp_replace. DuckDB uses RE2; Go's regexp package
// implements the same syntax, so a pattern means the same in both. The
// pattern, the options and the replacement must be constants: they are
// compiled once, at Compile time, and a bad one is a *TypeError at its
// offset.

func init() {
	define(&funcDef{name: "regexp_matches", sig: "regexp_matches(s, pattern[, options])", min: 2, max: 3, check: checkRegexpMatches})
	define(&funcDef{name: "regexp_replace", sig: "regexp_replace(s, pattern, replacement[, options])", min: 3, max: 4, check: checkRegexpReplace})
}

// regexpOptions reads DuckDB's option letters: c case-sensitive (the
// default), i case-insensitive, l the pattern is a literal string, m n p
// newline-sensitive ('.' does not match a newline, the default), s '.'
// matches a newline, g every match (regexp_replace only). The last of c/i
// and of m/n/p/s wins.
func regexpOptions(opts string, replace bool) (flags string, literal, global bool, err error) {
	fold, dotNL := false, false
	for _, o := range opts {
		switch o {
		case 'c':
			fold = false
		case 'i':
			fold = true
		case 'l':
			literal = true
		case 'm', 'n', 'p':
			dotNL = false
		case 's':
			dotNL = true
		case 'g':
			if !replace {
				return "", false, false, fmt.Errorf("option 'g' (every match) is only valid for regexp_replace")
			}
			global = true
		default:
			known := "c, i, l, m, n, p, s"
			if replace {
				known += ", g"
			}
			return "", false, false, fmt.Errorf("unknown regexp option %q (known: %s)", string(o), known)
		}
	}
	if fold {
		flags += "i"
	}
	if dotNL {
		flags += "s"
	}
	return flags, literal, global, nil
}

// compileRegexp compiles argument i of e, a constant pattern, with the
// options in argument k (k < 0: none). A NULL pattern or options gives
// null = true.
func (c *checker) compileRegexp(e *Call, args []node, i, k int, replace bool) (re *regexp.Regexp, global, null bool, bad node) {
	pat, patNull, pn := c.argConst(e, args, i, "a constant string pattern")
	if poisoned(pn) {
		bad = pn
	}
	opts, optsNull := "", false
	if k >= 0 && k < len(args) {
		var on node
		opts, optsNull, on = c.argConst(e, args, k, "constant string options")
		if poisoned(on) {
			bad = on
		}
	}
	if bad != nil {
		return nil, false, false, bad
	}
	if patNull || optsNull {
		return nil, false, true, nil
	}
	flags, literal, global, err := regexpOptions(opts, replace)
	if err != nil {
		// The pattern is still compiled (without options), for its errors.
		bad = c.report(typeErrf(offset(e.Args[k]), "%s: %v", e.Name, err))
	}
	if literal {
		pat = regexp.QuoteMeta(pat)
	}
	if flags != "" {
		pat = "(?" + flags + ")" + pat
	}
	re, err = regexp.Compile(pat)
	if err != nil {
		msg := err.Error()
		var se *syntax.Error
		if asSyntaxError(err, &se) {
			msg = se.Code.String()
			if se.Expr != "" && se.Expr != pat {
				msg += " at " + quoteString(se.Expr)
			}
		}
		return nil, false, false, c.report(typeErrf(offset(e.Args[i]), "%s: invalid pattern %s: %s", e.Name, quoteString(pat), msg))
	}
	if bad != nil {
		return nil, false, false, bad
	}
	return re, global, false, nil
}

func asSyntaxError(err error, se **syntax.Error) bool {
	s, ok := err.(*syntax.Error)
	if ok {
		*se = s
	}
	return ok
}

func checkRegexpMatches(c *checker, e *Call, args []node) (node, error) {
	s := c.argString(e, args, 0, "a string")
	re, _, null, bad := c.compileRegexp(e, args, 1, 2, false)
	if poisoned(s) || bad != nil {
		return poisonNode{}, nil
	}
	if null || isNullConst(s) {
		return nullOf(tBool), nil
	}
	return c.newFunc(e, tBool, []node{s}, func(ev *evaluator, vals []value) (arrow.Array, error) {
		sv := strViewOf(vals[0])
		buf, out := newBoolBuffer(ev.mem, ev.n)
		for i := 0; i < ev.n; i++ {
			if !sv.null(i) && re.Match(sv.at(i)) {
				out[i>>3] |= 1 << (i & 7)
			}
		}
		return finish(tBool, ev.n, ev.validityN(vals...), buf), nil
	})
}

// rewrite is a compiled replacement: literal text and group references
// (\0 the whole match, \1..\9 the groups), as RE2's Rewrite reads it.
type rewrite struct {
	parts []rewritePart
	// invalid: a backslash not followed by a digit or a backslash, or a
	// group the pattern does not have. RE2 then replaces nothing and
	// DuckDB returns the string unchanged; so does this package.
	invalid bool
}

type rewritePart struct {
	lit   string
	group int // -1 for literal text
}

func parseRewrite(s string, groups int) rewrite {
	var rw rewrite
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			rw.parts = append(rw.parts, rewritePart{lit: lit.String(), group: -1})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch != '\\' {
			lit.WriteByte(ch)
			continue
		}
		if i+1 >= len(s) {
			rw.invalid = true
			break
		}
		i++
		switch d := s[i]; {
		case d == '\\':
			lit.WriteByte('\\')
		case '0' <= d && d <= '9':
			g := int(d - '0')
			if g > groups {
				rw.invalid = true
			}
			flush()
			rw.parts = append(rw.parts, rewritePart{group: g})
		default:
			rw.invalid = true
		}
	}
	flush()
	return rw
}

func checkRegexpReplace(c *checker, e *Call, args []node) (node, error) {
	s := c.argString(e, args, 0, "a string")
	re, global, null, bad := c.compileRegexp(e, args, 1, 3, true)
	repl, replNull, rn := c.argConst(e, args, 2, "a constant string replacement")
	if poisoned(s, rn) || bad != nil {
		return poisonNode{}, nil
	}
	if null || replNull || isNullConst(s) {
		return nullOf(tString), nil
	}
	rw := parseRewrite(repl, re.NumSubexp())
	if rw.invalid {
		return s, nil
	}
	// Literal parts as bytes once, not per row.
	lits := make([][]byte, len(rw.parts))
	for i, p := range rw.parts {
		lits[i] = []byte(p.lit)
	}
	return c.newFunc(e, tString, []node{s}, func(ev *evaluator, vals []value) (arrow.Array, error) {
		sv := strViewOf(vals[0])
		w := newStrWriter(ev.mem, ev.n, estimate(&sv, ev.n))
		for i := 0; i < ev.n; i++ {
			w.row(i)
			if sv.null(i) {
				continue
			}
			b := sv.at(i)
			if !global {
				// FindSubmatchIndex allocates its result: Go's regexp has no
				// form that appends into a caller's slice.
				m := re.FindSubmatchIndex(b)
				if m == nil {
					w.write(b)
					continue
				}
				w.write(b[:m[0]])
				expandParts(w, rw.parts, lits, b, m)
				w.write(b[m[1]:])
				continue
			}
			last := 0
			for _, m := range re.FindAllSubmatchIndex(b, -1) {
				w.write(b[last:m[0]])
				expandParts(w, rw.parts, lits, b, m)
				last = m[1]
			}
			w.write(b[last:])
		}
		return w.finish(ev.n, ev.validityN(vals...))
	})
}

func expandParts(w *strWriter, parts []rewritePart, lits [][]byte, b []byte, m []int) {
	for k, p := range parts {
		if p.group < 0 {
			w.write(lits[k])
			continue
		}
		if a, z := m[2*p.group], m[2*p.group+1]; a >= 0 {
			w.write(b[a:z])
		}
	}
}
