package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/zflowdev/zflow/internal/errlist"
)

// ErrStop is returned by Emitter.Emit when no consumer wants more batches
// (a downstream limit was reached). A source that sees it stops and returns
// nil or ErrStop; a transform may return it from Process to say it needs no
// more input.
var ErrStop = errors.New("engine: downstream needs no more batches")

// NodeError is a compile-time error about one node. Field, when set, names
// the parameter at fault (dotted path for nested ones: "columns.2.type");
// Offset, when >= 0, is a byte offset inside that parameter's string value
// (a position inside an expression). Package pipelines turns these into
// file:line:col.
type NodeError struct {
	Node   string
	Field  string
	Offset int
	Msg    string
}

func (e *NodeError) Error() string {
	var b strings.Builder
	b.WriteString(e.Node)
	if e.Field != "" {
		b.WriteString(".")
		b.WriteString(e.Field)
	}
	if e.Offset >= 0 && e.Field != "" {
		fmt.Fprintf(&b, "@%d", e.Offset)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// FieldError is what a Spec's Build returns for a bad parameter; Compile
// wraps it into a NodeError.
type FieldError struct {
	Field  string // parameter name, dotted for nested
	Offset int    // byte offset in the string value, or -1
	Msg    string
}

func (e *FieldError) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("%s (at offset %d): %s", e.Field, e.Offset, e.Msg)
	}
	return e.Field + ": " + e.Msg
}

// Errf makes a FieldError with no offset.
func Errf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Offset: -1, Msg: fmt.Sprintf(format, args...)}
}

// Errors is a list of compile errors, reported together.
type Errors []error

func (es Errors) Error() string { return errlist.Join(es) }

// Unwrap lets errors.Is/As look into each error.
func (es Errors) Unwrap() []error { return es }

// OpError is a run-time error from one operator instance.
type OpError struct {
	Op       string // node id
	Type     string // operator type
	Instance int
	Err      error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("operator %q (%s): %v", e.Op, e.Type, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// Suggest returns the candidate closest to s by edit distance, or "" if none
// is close enough to be a plausible typo.
func Suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := levenshtein(strings.ToLower(s), strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) > 8 {
		limit = 3
	}
	if bestD <= limit && bestD < len(s) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// reportedPanic is implemented by errors that a component raises by panic
// because its interface has no error return (an allocator out of budget, for
// example): the engine reports them as the operator's error, without the
// "panic:" prefix and stack dump a bug gets.
type reportedPanic interface {
	error
	ReportedPanic()
}

func isReportedPanic(err error) bool {
	var rp reportedPanic
	return errors.As(err, &rp)
}
