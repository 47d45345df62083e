package operators

import "fmt"

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
