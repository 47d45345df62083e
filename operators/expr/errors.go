package expr

import (
	"errors"
	"fmt"

	"github.com/zflowdev/zflow/engine"
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

// Position returns the byte offset and the bare message of a *SyntaxError or
// *TypeError found in err's chain; ok is false for any other error.
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

func typeErrf(off int, format string, args ...any) *TypeError {
	return &TypeError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}
