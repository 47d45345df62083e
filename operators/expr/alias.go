package expr

import "strings"

// SplitAlias splits "expr AS name" at the last top-level AS (outside
// parentheses and quotes, so CAST(x AS int) is not split): the
// "expression AS name" items of project's columns and aggregate's group_by.
// A double-quoted name is unquoted.
func SplitAlias(s string) (expr, alias string) {
	depth, at := 0, -1
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '"':
			j := i + 1
			for j < len(s) {
				if s[j] == c {
					if j+1 < len(s) && s[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			i = j
		case '(':
			depth++
		case ')':
			depth--
		case 'a', 'A':
			if depth == 0 && i > 0 && i+2 < len(s) && isAliasSpace(s[i-1]) && (s[i+1] == 's' || s[i+1] == 'S') && isAliasSpace(s[i+2]) {
				at = i
			}
		}
	}
	if at < 0 {
		return s, ""
	}
	alias = strings.TrimSpace(s[at+2:])
	if len(alias) >= 2 && alias[0] == '"' && alias[len(alias)-1] == '"' {
		alias = strings.ReplaceAll(alias[1:len(alias)-1], `""`, `"`)
	}
	return s[:at], alias
}

func isAliasSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
