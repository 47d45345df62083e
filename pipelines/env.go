package pipelines

import (
	"fmt"
	"strings"
)

// Environment substitution in scalar values:
//
//	${NAME}            the value of NAME; an error when NAME is not set
//	${NAME:-default}   the value of NAME, or default when NAME is unset or empty
//	$$                 a literal $
//
// Any other $ is kept as is, so "price$" or a regular expression ending in
// $ need no escaping. Substitution happens once, in the text of string
// scalars (not in keys), before the value is decoded; its result is never
// scanned again.

// envSegment maps a run of the substituted string back to the text before
// substitution, so a position inside an expression can be placed in the
// file even after ${...} changed its length.
type envSegment struct {
	out, in, n int  // offset in the result, offset in the input, length in the result
	literal    bool // the run is copied from the input; otherwise it came from ${...} at in
}

// envSubst is the record of one substitution.
type envSubst struct {
	segs  []envSegment
	inLen int
}

// inOffset maps byte offset k of the substituted string to the input: a
// byte copied from the input maps to itself, a byte of a variable's value
// maps to the $ of its ${...}.
func (s *envSubst) inOffset(k int) int {
	if s == nil {
		return k
	}
	for _, g := range s.segs {
		if k >= g.out && k < g.out+g.n {
			if g.literal {
				return g.in + k - g.out
			}
			return g.in
		}
	}
	return s.inLen
}

// envError is a substitution error at byte offset off of the input.
type envError struct {
	off int
	msg string
}

// expandEnv substitutes ${...} and $$ in s. It returns the result, the
// offset map (nil when s has nothing to substitute) and the errors; on
// errors the result is meaningless.
func expandEnv(s string, lookup func(string) (string, bool)) (string, *envSubst, []envError) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var (
		b     strings.Builder
		sub   = &envSubst{inLen: len(s)}
		errs  []envError
		start = 0 // start of the pending literal run
	)
	flush := func(end int) {
		if end > start {
			sub.segs = append(sub.segs, envSegment{out: b.Len(), in: start, n: end - start, literal: true})
			b.WriteString(s[start:end])
		}
	}
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 >= len(s) || (s[i+1] != '$' && s[i+1] != '{') {
			i++
			continue
		}
		flush(i)
		if s[i+1] == '$' {
			sub.segs = append(sub.segs, envSegment{out: b.Len(), in: i, n: 1})
			b.WriteByte('$')
			i += 2
			start = i
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			errs = append(errs, envError{i, "unterminated ${ (want ${NAME} or ${NAME:-default}; write $$ for a literal $)"})
			return s, nil, errs
		}
		body := s[i+2 : i+2+end]
		name, def, hasDef := strings.Cut(body, ":-")
		switch {
		case !validEnvName(name):
			errs = append(errs, envError{i, fmt.Sprintf("invalid variable name %q in ${%s} (want letters, digits and _, not starting with a digit)", name, body)})
		case hasDef && strings.Contains(def, "${"):
			errs = append(errs, envError{i, fmt.Sprintf("nested ${...} in the default of ${%s...} is not supported", name)})
		default:
			v, ok := lookup(name)
			if hasDef && v == "" {
				v, ok = def, true
			}
			if !ok {
				errs = append(errs, envError{i, fmt.Sprintf("environment variable %q is not set (use ${%s:-default} to give a default)", name, name)})
			}
			sub.segs = append(sub.segs, envSegment{out: b.Len(), in: i, n: len(v)})
			b.WriteString(v)
		}
		i += 2 + end + 1
		start = i
	}
	flush(len(s))
	if len(errs) > 0 {
		return s, nil, errs
	}
	return b.String(), sub, nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
