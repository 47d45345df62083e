package expr

import (
	"bytes"
	"errors"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// LIKE patterns are compiled once, at Compile time. % matches any run of
// characters (possibly empty), _ matches exactly one character (a UTF-8 code
// point; an invalid byte counts as one), everything else matches itself,
// case-sensitively. With ESCAPE 'c', c makes the next character literal.
//
// Common shapes get a fast path over the whole array: 'abc' (equality),
// 'abc%' (prefix), '%abc' (suffix), '%abc%' (bytes.Index), 'ab%yz' and '%'.
// Anything else runs the general matcher, which matches the pieces between
// %s left to right, each at its leftmost position; that is exact because a
// piece that matches earlier also ends no later.

type likeKind uint8

const (
	likeAll likeKind = iota
	likeExact
	likePrefix
	likeSuffix
	likeContains
	likePrefixSuffix
	likeGeneral
)

// likePiece is a run of the pattern between two %s: literal bytes, with
// wild[k] marking the positions that are _ (byte lit[k] is then unused).
type likePiece struct {
	lit  []byte
	wild []bool
}

func (p *likePiece) hasWild() bool {
	for _, w := range p.wild {
		if w {
			return true
		}
	}
	return false
}

// likeMatcher is a compiled LIKE pattern. It is read-only after
// compileLike, so concurrent evaluations share it.
type likeMatcher struct {
	kind   likeKind
	a, b   []byte // the literal(s) of the fast paths
	pieces []likePiece
	lead   bool // the pattern starts with %
	trail  bool // the pattern ends with %
}

// compileLike compiles pattern; esc is the escape character, or -1.
func compileLike(pattern string, esc rune) (*likeMatcher, error) {
	m := &likeMatcher{}
	var cur likePiece
	sawPercent, started := false, false
	flush := func() {
		if len(cur.lit) > 0 {
			m.pieces = append(m.pieces, cur)
		}
		cur = likePiece{}
	}
	for i := 0; i < len(pattern); {
		r, n := utf8.DecodeRuneInString(pattern[i:])
		i += n
		switch {
		case r == esc:
			if i >= len(pattern) {
				return nil, errors.New("LIKE pattern ends with the escape character")
			}
			_, n2 := utf8.DecodeRuneInString(pattern[i:])
			cur.lit = append(cur.lit, pattern[i:i+n2]...)
			for range n2 {
				cur.wild = append(cur.wild, false)
			}
			i += n2
		case r == '%':
			if !started {
				m.lead = true
			}
			sawPercent = true
			flush()
			m.trail = true
			started = true
			continue
		case r == '_':
			cur.lit = append(cur.lit, 0)
			cur.wild = append(cur.wild, true)
		default:
			start := len(cur.lit)
			cur.lit = append(cur.lit, pattern[i-n:i]...)
			for range len(cur.lit) - start {
				cur.wild = append(cur.wild, false)
			}
		}
		started = true
		m.trail = false
	}
	flush()
	if !sawPercent && len(m.pieces) == 0 {
		m.pieces = []likePiece{{}} // '' matches only the empty string
	}
	m.classify(sawPercent)
	return m, nil
}

func (m *likeMatcher) classify(sawPercent bool) {
	m.kind = likeGeneral
	for i := range m.pieces {
		if m.pieces[i].hasWild() {
			return
		}
	}
	switch n := len(m.pieces); {
	case n == 0:
		m.kind = likeAll
	case n == 1 && !sawPercent:
		m.kind, m.a = likeExact, m.pieces[0].lit
	case n == 1 && !m.lead && m.trail:
		m.kind, m.a = likePrefix, m.pieces[0].lit
	case n == 1 && m.lead && !m.trail:
		m.kind, m.a = likeSuffix, m.pieces[0].lit
	case n == 1:
		m.kind, m.a = likeContains, m.pieces[0].lit
	case n == 2 && !m.lead && !m.trail:
		m.kind, m.a, m.b = likePrefixSuffix, m.pieces[0].lit, m.pieces[1].lit
	}
}

func isCont(c byte) bool { return c&0xC0 == 0x80 }

// matchAt matches piece p at s[q:] and returns where the match ends.
func (p *likePiece) matchAt(s []byte, q int) (int, bool) {
	for k, c := range p.lit {
		if q >= len(s) {
			return 0, false
		}
		if p.wild[k] {
			_, n := utf8.DecodeRune(s[q:])
			q += n
			continue
		}
		if s[q] != c {
			return 0, false
		}
		q++
	}
	return q, true
}

// find returns the end of the leftmost match of p in s at or after q.
func (p *likePiece) find(s []byte, q int) (int, bool) {
	wildFirst := p.wild[0]
	for q <= len(s) {
		if !wildFirst {
			i := bytes.IndexByte(s[q:], p.lit[0])
			if i < 0 {
				return 0, false
			}
			q += i
		} else if q < len(s) && isCont(s[q]) {
			q++
			continue
		}
		if end, ok := p.matchAt(s, q); ok {
			return end, true
		}
		q++
	}
	return 0, false
}

// matchGeneral matches s against the pattern pieces.
func (m *likeMatcher) matchGeneral(s []byte) bool {
	pieces := m.pieces
	q := 0
	if !m.lead {
		end, ok := pieces[0].matchAt(s, 0)
		if !ok {
			return false
		}
		if len(pieces) == 1 && !m.trail {
			return end == len(s)
		}
		q, pieces = end, pieces[1:]
	}
	var last *likePiece
	if !m.trail && len(pieces) > 0 {
		last, pieces = &pieces[len(pieces)-1], pieces[:len(pieces)-1]
	}
	for i := range pieces {
		end, ok := pieces[i].find(s, q)
		if !ok {
			return false
		}
		q = end
	}
	if last == nil {
		return true
	}
	if !last.hasWild() {
		return len(s)-q >= len(last.lit) && bytes.HasSuffix(s, last.lit)
	}
	for ; q < len(s); q++ {
		if last.wild[0] && isCont(s[q]) {
			continue
		}
		if end, ok := last.matchAt(s, q); ok && end == len(s) {
			return true
		}
	}
	return false
}

// match reports whether s matches the pattern (used by tests; the kernel
// inlines the fast paths).
func (m *likeMatcher) match(s []byte) bool {
	switch m.kind {
	case likeAll:
		return true
	case likeExact:
		return bytes.Equal(s, m.a)
	case likePrefix:
		return bytes.HasPrefix(s, m.a)
	case likeSuffix:
		return bytes.HasSuffix(s, m.a)
	case likeContains:
		return bytes.Contains(s, m.a)
	case likePrefixSuffix:
		return len(s) >= len(m.a)+len(m.b) && bytes.HasPrefix(s, m.a) && bytes.HasSuffix(s, m.b)
	}
	return m.matchGeneral(s)
}

// likeNode is x [NOT] LIKE pattern.
type likeNode struct {
	x   node
	m   *likeMatcher
	not bool
}

func (n *likeNode) dtype() arrow.DataType { return tBool }

func (n *likeNode) eval(ev *evaluator) (value, error) {
	arr, err := ev.evalArray(n.x)
	if err != nil {
		return value{}, err
	}
	defer arr.Release()
	return value{arr: n.m.apply(ev.mem, arr.(*array.String), n.not)}, nil
}

// apply matches every row of s; the result has s's nulls. Each fast path
// is its own loop, rejecting on the first (or last) byte before comparing,
// and gathers eight results in a register before storing a bitmap byte.
func (m *likeMatcher) apply(mem memory.Allocator, s *array.String, not bool) arrow.Array {
	rows := s.Len()
	offs, data := stringParts(s)
	out := newBuffer(mem, int(bitutil.BytesForBits(int64(rows))))
	ob := out.Bytes()
	a, b := m.a, m.b
	var acc byte
	flush := func(i int) {
		if i&7 == 7 {
			ob[i>>3] = acc
			acc = 0
		}
	}
	switch m.kind {
	case likeAll:
		fillBits(ob, true)
	case likeExact:
		for i := 0; i < rows; i++ {
			if v := data[offs[i]:offs[i+1]]; len(v) == len(a) && string(v) == string(a) {
				acc |= 1 << (i & 7)
			}
			flush(i)
		}
	case likePrefix:
		a0 := a[0]
		for i := 0; i < rows; i++ {
			if v := data[offs[i]:offs[i+1]]; len(v) >= len(a) && v[0] == a0 && string(v[:len(a)]) == string(a) {
				acc |= 1 << (i & 7)
			}
			flush(i)
		}
	case likeSuffix:
		aN := a[len(a)-1]
		for i := 0; i < rows; i++ {
			if v := data[offs[i]:offs[i+1]]; len(v) >= len(a) && v[len(v)-1] == aN && string(v[len(v)-len(a):]) == string(a) {
				acc |= 1 << (i & 7)
			}
			flush(i)
		}
	case likeContains:
		for i := 0; i < rows; i++ {
			if bytes.Contains(data[offs[i]:offs[i+1]], a) {
				acc |= 1 << (i & 7)
			}
			flush(i)
		}
	case likePrefixSuffix:
		for i := 0; i < rows; i++ {
			v := data[offs[i]:offs[i+1]]
			if len(v) >= len(a)+len(b) && string(v[:len(a)]) == string(a) && string(v[len(v)-len(b):]) == string(b) {
				acc |= 1 << (i & 7)
			}
			flush(i)
		}
	default:
		for i := 0; i < rows; i++ {
			if m.matchGeneral(data[offs[i]:offs[i+1]]) {
				acc |= 1 << (i & 7)
			}
			flush(i)
		}
	}
	if m.kind != likeAll && rows&7 != 0 {
		ob[rows>>3] = acc
	}
	if not {
		for i := range ob {
			ob[i] = ^ob[i]
		}
	}
	return finishLike(mem, tBool, s, out)
}
