package pipelines

import (
	"bytes"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Positions inside a scalar. An operator that finds an error inside an
// expression reports its byte offset in the string it was given; this file
// places that offset in the file. YAML may have changed the text on the way:
// quotes, escapes, '' in single quotes, line folding, block indentation, and
// then ${ENV} substitution. So the offset is first taken back through the
// substitution (a byte of a variable's value maps to its ${), then the
// scalar's source is scanned again from its start, matching each character
// of the decoded text to the character it came from. Whitespace that folding
// produced maps to where the line break was. If the scan cannot match the
// text (a YAML corner this scanner does not know), the position falls back
// to the start of the value: never wrong by more than the value itself.

// source is the text of a pipeline file with an index of its lines.
type source struct {
	text  []byte
	lines []int // byte offset of the start of each line
}

func newSource(text []byte) *source {
	s := &source{text: text, lines: []int{0}}
	for i, c := range text {
		// Line breaks are \n, \r\n and a lone \r, as in YAML (and goccy).
		if c == '\n' || (c == '\r' && (i+1 == len(text) || text[i+1] != '\n')) {
			s.lines = append(s.lines, i+1)
		}
	}
	return s
}

// normalizeNewlines turns \r\n and lone \r into \n: YAML treats them all as
// line breaks, and goccy/go-yaml counts a \r\n inside a quoted scalar as two
// lines, which would misplace everything after it. Lines and columns do not
// change: a \r only ever ends a line.
func normalizeNewlines(b []byte) []byte {
	if bytes.IndexByte(b, '\r') < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\r' {
			if i+1 < len(b) && b[i+1] == '\n' {
				continue
			}
			out = append(out, '\n')
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// clamp moves p inside the file: to its last line, and to at most one past
// the end of its line.
func (s *source) clamp(p filePos) filePos {
	if p.Line < 1 {
		return p
	}
	p.Line = min(p.Line, len(s.lines))
	start := s.lines[p.Line-1]
	end := start
	for end < len(s.text) && s.text[end] != '\n' && s.text[end] != '\r' {
		end++
	}
	p.Col = max(1, min(p.Col, utf8.RuneCount(s.text[start:end])+1))
	return p
}

// index returns the byte offset of p, clamped to its line.
func (s *source) index(p filePos) int {
	if p.Line < 1 || p.Line > len(s.lines) {
		return -1
	}
	i := s.lines[p.Line-1]
	for col := 1; col < p.Col && i < len(s.text) && s.text[i] != '\n' && s.text[i] != '\r'; col++ {
		_, w := utf8.DecodeRune(s.text[i:])
		i += w
	}
	return i
}

// pos returns the position of byte offset i.
func (s *source) pos(i int) filePos {
	i = max(0, min(i, len(s.text)))
	line := sort.Search(len(s.lines), func(k int) bool { return s.lines[k] > i }) // first line starting after i
	start := s.lines[line-1]
	return filePos{Line: line, Col: utf8.RuneCount(s.text[start:i]) + 1}
}

// skipBlank moves p past spaces and tabs on its line: goccy sometimes places
// a value at the blank before it.
func (s *source) skipBlank(p filePos) filePos {
	i := s.index(p)
	if i < 0 {
		return p
	}
	j := i
	for j < len(s.text) && (s.text[j] == ' ' || s.text[j] == '\t') {
		j++
	}
	if j == i || j == len(s.text) || s.text[j] == '\n' || s.text[j] == '\r' {
		return p
	}
	return filePos{p.Line, p.Col + j - i}
}

// scalarPos returns the position of byte offset off in the value of string
// scalar n: of its text after ${ENV} substitution when afterEnv, else of its
// text before. It never fails: without a better answer it returns n.pos.
func scalarPos(s *source, n *node, off int, afterEnv bool) filePos {
	if s == nil || n == nil || n.kind != nodeScalar {
		if n != nil {
			return n.pos
		}
		return filePos{}
	}
	if afterEnv {
		off = n.env.inOffset(off)
	}
	raw := n.raw
	if n.typ != typeString {
		raw = n.text
	}
	off = max(0, min(off, len(raw)))
	if i, ok := s.scanScalar(n, raw, off); ok {
		return s.pos(i)
	}
	return n.pos
}

// scanScalar finds the byte offset in the file of byte off of raw, the
// decoded text of n.
func (s *source) scanScalar(n *node, raw string, off int) (int, bool) {
	i := s.index(n.pos)
	if i < 0 {
		return 0, false
	}
	switch n.style {
	case styleSingle, styleDouble:
		if i >= len(s.text) || (s.text[i] != '\'' && s.text[i] != '"') {
			return 0, false
		}
		i++
	case styleLiteral, styleFolded:
		for i < len(s.text) && s.text[i] != '\n' && s.text[i] != '\r' {
			i++
		}
		if i+1 < len(s.text) && s.text[i] == '\r' && s.text[i+1] == '\n' {
			i++
		}
		i++
	}
	for bo, r := range raw {
		j, next, ok := s.match(i, r, n.style)
		if !ok {
			return 0, false
		}
		if bo >= off {
			return j, true
		}
		i = next
	}
	return min(i, len(s.text)), true
}

// match finds decoded rune r in the file from byte i on. It returns where r
// is and where the scan goes on.
func (s *source) match(i int, r rune, style scalarStyle) (at, next int, ok bool) {
	t := s.text
	for i < len(t) {
		c, w := utf8.DecodeRune(t[i:])
		if style == styleDouble && c == '\\' {
			esc, n, cont := decodeEscape(t[i:])
			if n == 0 {
				return 0, 0, false
			}
			if cont { // escaped line break: no character
				i += n
				for i < len(t) && (t[i] == ' ' || t[i] == '\t') {
					i++
				}
				continue
			}
			if esc == r {
				return i, i + n, true
			}
			return 0, 0, false
		}
		if style == styleSingle && c == '\'' {
			if i+1 < len(t) && t[i+1] == '\'' && r == '\'' {
				return i, i + 2, true
			}
			return 0, 0, false
		}
		switch {
		case c == r:
			return i, i + w, true
		case isBlank(r): // whitespace made by folding: no character of its own
			return i, i, true
		case isBlank(c): // indentation, a folded line break
			i += w
		default:
			return 0, 0, false
		}
	}
	return 0, 0, false
}

func isBlank(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// simpleEscapes are YAML's one-character double-quoted escapes.
var simpleEscapes = map[byte]rune{
	'0': 0, 'a': '\a', 'b': '\b', 't': '\t', '\t': '\t', 'n': '\n', 'v': '\v', 'f': '\f',
	'r': '\r', 'e': 0x1b, ' ': ' ', '"': '"', '/': '/', '\\': '\\', 'N': 0x85, '_': 0xa0,
	'L': 0x2028, 'P': 0x2029,
}

// decodeEscape decodes the double-quoted escape at the start of t. It
// returns the rune, the escape's length, and whether it is an escaped line
// break (which produces nothing). A length of 0 means not an escape.
func decodeEscape(t []byte) (r rune, n int, cont bool) {
	if len(t) < 2 || t[0] != '\\' {
		return 0, 0, false
	}
	if v, ok := simpleEscapes[t[1]]; ok {
		return v, 2, false
	}
	switch t[1] {
	case '\n':
		return 0, 2, true
	case '\r':
		if len(t) > 2 && t[2] == '\n' {
			return 0, 3, true
		}
		return 0, 2, true
	case 'x', 'u', 'U':
		digits := map[byte]int{'x': 2, 'u': 4, 'U': 8}[t[1]]
		if len(t) < 2+digits {
			return 0, 0, false
		}
		v, err := strconv.ParseUint(string(t[2:2+digits]), 16, 32)
		if err != nil {
			return 0, 0, false
		}
		return rune(v), 2 + digits, false
	}
	return 0, 0, false
}
