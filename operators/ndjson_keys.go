package operators

import (
	"encoding/json"
	"fmt"
)

// keyCheck watches the top-level keys of the objects streaming through an
// ndjson source, byte by byte, and stops at the first key that is not a
// column: arrow-go's decoder drops such keys without a word, and a key that
// first appears after the objects sampled at compile time would vanish
// from the output. A small state machine (strings, escapes, nesting) over
// the bytes already being read; it allocates only for the key it reports.
type keyCheck struct {
	known map[string]bool
	path  string
	hint  string // what to do about it

	line     int64 // 1-based line of the byte being looked at
	depth    int
	inString bool
	escape   bool
	isKey    bool // the current string is a top-level key
	wantKey  bool // at depth 1, the next string is a key
	key      []byte
	err      error
}

// UnknownKeyError is the error of an object key that is not a column.
type UnknownKeyError struct {
	Path string
	Line int64
	Key  string
	Hint string
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("%s:%d: key %q is not a column; %s", e.Path, e.Line, e.Key, e.Hint)
}

func newKeyCheck(path string, columns []string, hint string) *keyCheck {
	k := &keyCheck{known: make(map[string]bool, len(columns)), path: path, hint: hint, line: 1}
	for _, c := range columns {
		k.known[c] = true
	}
	return k
}

// scan looks at p; it returns the error of the first unknown key (and
// keeps returning it).
func (k *keyCheck) scan(p []byte) error {
	if k.err != nil {
		return k.err
	}
	for _, b := range p {
		if k.inString {
			switch {
			case k.escape:
				k.escape = false
			case b == '\\':
				k.escape = true
			case b == '"':
				k.inString = false
				if k.isKey {
					if err := k.check(); err != nil {
						return err
					}
				}
				continue
			}
			if k.isKey {
				k.key = append(k.key, b)
			}
			continue
		}
		switch b {
		case '\n':
			k.line++
		case '"':
			k.inString, k.escape = true, false
			k.isKey = k.depth == 1 && k.wantKey
			k.wantKey = false
			k.key = k.key[:0]
		case '{', '[':
			k.depth++
			k.wantKey = b == '{' && k.depth == 1
		case '}', ']':
			k.depth--
		case ',':
			k.wantKey = k.depth == 1
		}
	}
	return nil
}

func (k *keyCheck) check() error {
	name := string(k.key)
	if k.known[name] {
		return nil
	}
	// An escaped key ("a\u0062") names the column it decodes to.
	var dec string
	if err := json.Unmarshal([]byte(`"`+name+`"`), &dec); err == nil && k.known[dec] {
		return nil
	} else if err == nil {
		name = dec
	}
	k.err = &UnknownKeyError{Path: k.path, Line: k.line, Key: name, Hint: k.hint}
	return k.err
}
