package expr

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// tokKind is the kind of a lexical token.
type tokKind uint8

const (
	tokEOF    tokKind = iota
	tokIdent          // bare identifier or keyword; text holds it as written
	tokQIdent         // "quoted identifier"; text holds it unescaped
	tokInt            // integer literal; text holds the digits
	tokFloat          // float literal; text holds it as written
	tokString         // 'string' literal; text holds it unescaped
	tokOp             // operator or punctuation; text holds it
)

// token is one lexical token. pos and end are byte offsets in the source.
type token struct {
	kind tokKind
	text string
	pos  int
	end  int
}

// describe renders t for an error message.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of expression"
	case tokString:
		return "string " + quoteString(t.text)
	case tokQIdent:
		return "identifier " + quoteIdent(t.text)
	case tokInt, tokFloat:
		return "number " + t.text
	}
	return `"` + t.text + `"`
}

// is reports whether t is the keyword kw (upper-case) or the operator kw.
func (t token) is(kw string) bool {
	switch t.kind {
	case tokIdent:
		return strings.EqualFold(t.text, kw)
	case tokOp:
		return t.text == kw
	}
	return false
}

// lexer splits the source into tokens on demand.
type lexer struct {
	src string
	pos int
}

func isIdentStart(r rune) bool {
	return r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') ||
		(r >= utf8.RuneSelf && unicode.IsLetter(r))
}

func isIdentPart(r rune) bool {
	return isIdentStart(r) || ('0' <= r && r <= '9') ||
		(r >= utf8.RuneSelf && unicode.IsDigit(r))
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// next returns the next token, or a *SyntaxError.
func (l *lexer) next() (token, error) {
	src := l.src
	for l.pos < len(src) {
		c := src[l.pos]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' {
			l.pos++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(src[l.pos:])
			if unicode.IsSpace(r) {
				l.pos += n
				continue
			}
		}
		break
	}
	start := l.pos
	if start >= len(src) {
		return token{kind: tokEOF, pos: start, end: start}, nil
	}
	c := src[start]
	switch {
	case isDigit(c) || (c == '.' && start+1 < len(src) && isDigit(src[start+1])):
		return l.number()
	case c == '\'':
		s, err := l.quoted('\'')
		if err != nil {
			return token{}, err
		}
		return token{kind: tokString, text: s, pos: start, end: l.pos}, nil
	case c == '"':
		s, err := l.quoted('"')
		if err != nil {
			return token{}, err
		}
		return token{kind: tokQIdent, text: s, pos: start, end: l.pos}, nil
	}
	r, n := utf8.DecodeRuneInString(src[start:])
	if isIdentStart(r) {
		l.pos += n
		for l.pos < len(src) {
			r, n := utf8.DecodeRuneInString(src[l.pos:])
			if !isIdentPart(r) {
				break
			}
			l.pos += n
		}
		return token{kind: tokIdent, text: src[start:l.pos], pos: start, end: l.pos}, nil
	}
	// Two-byte operators first.
	if start+1 < len(src) {
		switch op := src[start : start+2]; op {
		case "==", "!=", "<>", "<=", ">=", "||", "::":
			l.pos += 2
			return token{kind: tokOp, text: op, pos: start, end: l.pos}, nil
		}
	}
	switch c {
	case '+', '-', '*', '/', '%', '=', '<', '>', '(', ')', ',':
		l.pos++
		return token{kind: tokOp, text: src[start:l.pos], pos: start, end: l.pos}, nil
	}
	if r == utf8.RuneError && n <= 1 {
		return token{}, &SyntaxError{Offset: start, Msg: "invalid UTF-8 byte in expression"}
	}
	return token{}, &SyntaxError{Offset: start, Msg: "unexpected character " + quoteString(string(r))}
}

// number lexes an integer or float literal: 12, 1.5, .5, 1e9, 2.5E-3.
func (l *lexer) number() (token, error) {
	src, start := l.src, l.pos
	kind := tokInt
	for l.pos < len(src) && isDigit(src[l.pos]) {
		l.pos++
	}
	if l.pos < len(src) && src[l.pos] == '.' {
		kind = tokFloat
		l.pos++
		for l.pos < len(src) && isDigit(src[l.pos]) {
			l.pos++
		}
	}
	if l.pos < len(src) && (src[l.pos] == 'e' || src[l.pos] == 'E') {
		p := l.pos + 1
		if p < len(src) && (src[p] == '+' || src[p] == '-') {
			p++
		}
		if p >= len(src) || !isDigit(src[p]) {
			return token{}, &SyntaxError{Offset: start, Msg: "malformed number " + quoteString(src[start:min(p, len(src))])}
		}
		for p < len(src) && isDigit(src[p]) {
			p++
		}
		kind, l.pos = tokFloat, p
	}
	// A letter glued to a number ("12abc") is a typo, not two tokens.
	if l.pos < len(src) {
		if r, _ := utf8.DecodeRuneInString(src[l.pos:]); isIdentStart(r) {
			end := l.pos
			for end < len(src) {
				r, n := utf8.DecodeRuneInString(src[end:])
				if !isIdentPart(r) {
					break
				}
				end += n
			}
			return token{}, &SyntaxError{Offset: start, Msg: "malformed number " + quoteString(src[start:end])}
		}
	}
	return token{kind: kind, text: src[start:l.pos], pos: start, end: l.pos}, nil
}

// quoted lexes a literal delimited by q, where a doubled q stands for one.
func (l *lexer) quoted(q byte) (string, error) {
	src, start := l.src, l.pos
	l.pos++ // opening quote
	var b strings.Builder
	seg := l.pos
	for l.pos < len(src) {
		if src[l.pos] != q {
			l.pos++
			continue
		}
		if l.pos+1 < len(src) && src[l.pos+1] == q {
			b.WriteString(src[seg : l.pos+1])
			l.pos += 2
			seg = l.pos
			continue
		}
		b.WriteString(src[seg:l.pos])
		l.pos++ // closing quote
		if !utf8.ValidString(src[start:l.pos]) {
			return "", &SyntaxError{Offset: start, Msg: "invalid UTF-8 in quoted text"}
		}
		return b.String(), nil
	}
	what := "string literal"
	if q == '"' {
		what = "quoted identifier"
	}
	return "", &SyntaxError{Offset: start, Msg: "unterminated " + what}
}

// quoteString renders s as a SQL string literal.
func quoteString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// quoteIdent renders s as a double-quoted SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// QuoteIdent writes name as a double-quoted identifier, which the parser
// reads back as exactly that column name (for expressions a program writes).
func QuoteIdent(name string) string { return quoteIdent(name) }
