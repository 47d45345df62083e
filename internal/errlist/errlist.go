package errlist

import "strings"

// Join renders the errors of l one per line.
func Join[E error](l []E) string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the errors of l as a new []error, for an Unwrap() []error
// method that lets errors.Is and errors.As look at each of them.
func Unwrap[E error](l []E) []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}
