// Package k8sname checks and makes the names Kubernetes accepts: RFC 1123
// labels (namespaces, object names) and label values and name parts
// (Kubernetes' "qualified name" syntax).
package k8sname

import "strings"

// IsLabel says s is an RFC 1123 label: 1 to 63 lower-case letters,
// digits and -, starting and ending with a letter or digit.
func IsLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Value makes s a label value or a label name's part: every byte other
// than [A-Za-z0-9-_.] replaced by repl, the ends trimmed to a letter or
// digit, at most max bytes.
func Value(s string, max int, repl byte) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = repl
		}
	}
	const notEnd = "-_."
	out := strings.Trim(string(b), notEnd)
	if len(out) > max {
		out = strings.Trim(out[:max], notEnd)
	}
	return out
}
