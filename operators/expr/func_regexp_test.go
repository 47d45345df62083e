package expr

import (
	"testing"
)

// The regexp functions on the test batch; every expected value is DuckDB's
// (v1.5.6) answer for the same rows.
var regexpFuncTests = []struct{ src, want string }{
	{"regexp_matches(name, 'a')", "[true,true,null,false,false,true]"},
	{"regexp_matches(name, '^[a-z]')", "[false,true,null,false,false,true]"},
	{"regexp_matches(name, '^[a-z]', 'i')", "[true,true,null,false,false,true]"},
	{"regexp_matches(name, 'A', 'ic')", "[true,false,null,false,false,false]"},
	{"regexp_matches(symbol, 'A{2}')", "[true,false,false,null,true,false]"},
	{"regexp_matches(name, '^.{7}$')", "[false,false,null,true,false,false]"},
	{"regexp_matches(name, 'a.c', 'l')", "[false,false,null,false,false,false]"},
	{"regexp_matches(name, 'a%b', 'l')", "[false,false,null,false,false,true]"},
	{"regexp_matches(name, '')", "[true,true,null,true,true,true]"},
	{"regexp_matches(name, NULL)", "[null,null,null,null,null,null]"},
	{"regexp_matches(NULL, 'a')", "[null,null,null,null,null,null]"},
	{"regexp_replace(name, 'a', 'X')", `["AlphX","betX",null,"Ünïcode","","X%b_c"]`},
	{"regexp_replace(name, 'a', 'X', 'g')", `["AlphX","betX",null,"Ünïcode","","X%b_c"]`},
	{`regexp_replace(name, '(.)(.)', '\2\1')`, `["lApha","ebta",null,"nÜïcode","","%ab_c"]`},
	{`regexp_replace(name, '(.)(.)', '\2\1', 'g')`, `["lAhpa","ebat",null,"nÜcïdoe","","%a_bc"]`},
	{`regexp_replace(name, '[aeiou]', '<\0>', 'g')`, `["Alph<a>","b<e>t<a>",null,"Ünïc<o>d<e>","","<a>%b_c"]`},
	{"regexp_replace(symbol, 'a', '_', 'gi')", `["__PL","MSFT","GOOG",null,"__PL","_mzn"]`},
	{"regexp_replace(name, '', '-', 'g')", `["-A-l-p-h-a-","-b-e-t-a-",null,"-Ü-n-ï-c-o-d-e-","-","-a-%-b-_-c-"]`},
	{"regexp_replace(name, 'x?', '-', 'g')", `["-A-l-p-h-a-","-b-e-t-a-",null,"-Ü-n-ï-c-o-d-e-","-","-a-%-b-_-c-"]`},
	{"regexp_replace(name, 'a*', 'X', 'g')", `["XAXlXpXhX","XbXeXtX",null,"XÜXnXïXcXoXdXeX","X","X%XbX_XcX"]`},
	{`regexp_replace(name, 'a', '\9')`, `["Alpha","beta",null,"Ünïcode","","a%b_c"]`},
	{`regexp_replace(name, 'a', 'x\y')`, `["Alpha","beta",null,"Ünïcode","","a%b_c"]`},
	{`regexp_replace(name, 'a', '\\')`, `["Alph\\","bet\\",null,"Ünïcode","","\\%b_c"]`},
	{"regexp_replace(name, 'a', '$1&')", `["Alph$1&","bet$1&",null,"Ünïcode","","$1&%b_c"]`},
	{"regexp_replace(name, 'a', NULL)", "[null,null,null,null,null,null]"},
	{"regexp_replace(name, 'ï', 'i')", `["Alpha","beta",null,"Ünicode","","a%b_c"]`},
	{`regexp_replace(name, '^(\w)', '\1\1')`, `["AAlpha","bbeta",null,"Ünïcode","","aa%b_c"]`},
}

func TestRegexpFunctions(t *testing.T) { runFuncTests(t, regexpFuncTests) }

func TestRegexpErrors(t *testing.T) {
	tests := []compileErrorCase{
		{"regexp_matches(symbol, '(')", 23, "regexp_matches: invalid pattern '(': missing closing )"},
		{"regexp_matches(symbol, 'a(b)\\')", 23, `regexp_matches: invalid pattern 'a(b)\': trailing backslash at end of expression`},
		{"regexp_matches(symbol, '[z-a]', 'i')", 23, "regexp_matches: invalid pattern '(?i)[z-a]': invalid character class range at 'z-a'"},
		{"regexp_matches(symbol, name)", 23, "regexp_matches needs a constant string pattern, got name (large_string)"},
		{"regexp_matches(symbol, 'a', 'x')", 28, "regexp_matches: unknown regexp option \"x\" (known: c, i, l, m, n, p, s)"},
		{"regexp_matches(symbol, 'a', 'g')", 28, "regexp_matches: option 'g' (every match) is only valid for regexp_replace"},
		{"regexp_replace(symbol, 'a', 'b', 'gz')", 33, "regexp_replace: unknown regexp option \"z\" (known: c, i, l, m, n, p, s, g)"},
		{"regexp_replace(symbol, 'a', symbol)", 28, "regexp_replace needs a constant string replacement, got symbol (string)"},
		{"regexp_replace(qty, '[', 1)", 15, "regexp_replace needs a string, got qty (int64)"},
		{"regexp_matches(symbol, 'a', flag)", 28, "regexp_matches needs constant string options, got flag (bool)"},
	}
	checkCompileErrors(t, tests)
	// Every wrong argument of one call is reported.
	_, err := Compile("regexp_replace(qty, '[', 1)", testSchema)
	if es := Errors(err); len(es) != 3 {
		t.Errorf("regexp_replace(qty, '[', 1): %d errors, want 3: %v", len(es), err)
	}
}
