package expr

import (
	"errors"
	"fmt"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/errlist"
)

// SyntaxError is a Parse error. Offset is a byte offset into the source
// string; Msg is the bare message, meant to be shown after a position that
// the caller renders (file:line:col).
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("expr: syntax error at offset %d: %s", e.Offset, e.Msg)
}

// TypeError is a Compile error found while checking an expression against a
// schema: an unknown column or function, mismatched operand types, a bad
// constant. Offset is the byte offset of the offending sub-expression in the
// source; Msg is the bare message.
type TypeError struct {
	Offset int
	Msg    string
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("expr: type error at offset %d: %s", e.Offset, e.Msg)
}

// ErrorList is every *TypeError that Compile found in one expression, in
// source order (by offset), when there is more than one. Each keeps its own
// offset; errors.As finds the first, so Position and FieldError see the
// first error of the list, and Errors and FieldErrors return them all.
type ErrorList []*TypeError

// Error renders one error per line.
func (l ErrorList) Error() string { return errlist.Join(l) }

// Unwrap lets errors.Is and errors.As look at each *TypeError.
func (l ErrorList) Unwrap() []error { return errlist.Unwrap(l) }

// Errors returns every error of err: each *TypeError of an ErrorList found
// in err's chain, else err itself (a *SyntaxError, a single *TypeError, or
// any other error); nil for nil.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	var l ErrorList
	if errors.As(err, &l) {
		return l.Unwrap()
	}
	return []error{err}
}

// Position returns the byte offset and the bare message of a *SyntaxError or
// *TypeError found in err's chain (the first of an ErrorList); ok is false
// for any other error.
func Position(err error) (offset int, msg string, ok bool) {
	var se *SyntaxError
	if errors.As(err, &se) {
		return se.Offset, se.Msg, true
	}
	var te *TypeError
	if errors.As(err, &te) {
		return te.Offset, te.Msg, true
	}
	return -1, "", false
}

// FieldError turns an error from Parse or Compile into the engine's
// *engine.FieldError for the operator parameter field ("where",
// "columns.total"), keeping the offset so the pipeline compiler can point at
// file:line:col inside the expression. An error without a position gets
// Offset -1 and its full text.
func FieldError(field string, err error) *engine.FieldError {
	if off, msg, ok := Position(err); ok {
		return &engine.FieldError{Field: field, Offset: off, Msg: msg}
	}
	return &engine.FieldError{Field: field, Offset: -1, Msg: err.Error()}
}

// FieldErrors is FieldError for every error of err (see Errors): one
// *engine.FieldError for each, all for field, as an engine.Errors that the
// engine and the pipeline compiler report one by one, each at its own
// place. A single error gives a list of one.
func FieldErrors(field string, err error) engine.Errors {
	es := Errors(err)
	out := make(engine.Errors, len(es))
	for i, e := range es {
		out[i] = FieldError(field, e)
	}
	return out
}

func typeErrf(off int, format string, args ...any) *TypeError {
	return &TypeError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}
