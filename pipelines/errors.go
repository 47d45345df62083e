package pipelines

import (
	"fmt"
	"sort"

	"github.com/zflowdev/zflow/internal/errlist"
)

// filePos is a position in a pipeline file: 1-based line and column. Columns
// count characters (runes), not bytes, as goccy/go-yaml does. The zero filePos
// means "no position".
type filePos struct {
	Line, Col int
}

func (p filePos) valid() bool { return p.Line > 0 }

func (p filePos) before(q filePos) bool {
	if p.Line != q.Line {
		return p.Line < q.Line
	}
	return p.Col < q.Col
}

// Error is one spec error, placed in the pipeline file. Line and Col are
// 1-based; both are 0 when the error has no position (a file that cannot be
// read, an error about no node in particular).
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

// Error renders the error as file:line:col: message, the form editors and
// terminals recognise.
func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ErrorList is every error found in one pipeline file, sorted by position
// (errors without a position come last). Parse, Load and Compile return it
// as their error; use errors.As to get it back.
type ErrorList []*Error

// Error renders one error per line.
func (l ErrorList) Error() string { return errlist.Join(l) }

// Unwrap lets errors.Is and errors.As look at each *Error.
func (l ErrorList) Unwrap() []error { return errlist.Unwrap(l) }

// errs collects the errors of one file.
type errs struct {
	file string
	list ErrorList
}

func (c *errs) add(p filePos, format string, args ...any) {
	c.list = append(c.list, &Error{File: c.file, Line: p.Line, Col: p.Col, Msg: fmt.Sprintf(format, args...)})
}

// sorted returns the errors sorted by position with exact duplicates
// removed, or nil when there are none. Positions are clamped to the file
// (src may be nil), in case the YAML parser placed one past its end.
func (c *errs) sortedIn(src *source) ErrorList {
	for _, e := range c.list {
		if src != nil && e.Line > 0 {
			p := src.clamp(filePos{e.Line, e.Col})
			e.Line, e.Col = p.Line, p.Col
		}
	}
	return sortErrors(c.list)
}

// sorted returns the errors sorted by position with exact duplicates
// removed, or nil when there are none.
func (c *errs) sorted() ErrorList {
	return sortErrors(c.list)
}

func sortErrors(l ErrorList) ErrorList {
	if len(l) == 0 {
		return nil
	}
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if (a.Line > 0) != (b.Line > 0) {
			return a.Line > 0
		}
		return filePos{a.Line, a.Col}.before(filePos{b.Line, b.Col})
	})
	out := l[:1]
	for _, e := range l[1:] {
		last := out[len(out)-1]
		if *e == *last {
			continue
		}
		out = append(out, e)
	}
	return out
}
