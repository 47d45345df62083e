package expr

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// The string functions on the test batch (see eval_test.go for its rows).
// Every expected value is DuckDB's (v1.5.6) answer for the same rows.
var stringFuncTests = []struct{ src, want string }{
	{"substr(name, 2, 3)", `["lph","eta",null,"nïc","","%b_"]`},
	{"substr(name, -3)", `["pha","eta",null,"ode","","b_c"]`},
	{"substring(symbol, 0, 2)", `["A","M","G",null,"A","a"]`},
	{"substr(name, qty)", `["","",null,"","","a%b_c"]`},
	{"substr(name, small, -2)", `["ph","b",null,null,"",""]`},
	{"substr(name, 2, small)", `["lpha","b",null,null,"","%b_c"]`},
	{"substr('hello', -7, 3)", `["h","h","h","h","h","h"]`},
	{"substr('hello', 0)", `["hello","hello","hello","hello","hello","hello"]`},
	{"substr('hello', 3, -2)", `["he","he","he","he","he","he"]`},
	{"substr(NULL, 1)", "[null,null,null,null,null,null]"},
	{"substr(name, NULL)", "[null,null,null,null,null,null]"},
	{"replace(name, 'a', 'XY')", `["AlphXY","betXY",null,"Ünïcode","","XY%b_c"]`},
	{"replace(symbol, 'A', '')", `["PL","MSFT","GOOG",null,"PL","amzn"]`},
	{"replace(name, '', 'x')", `["Alpha","beta",null,"Ünïcode","","a%b_c"]`},
	{"replace(name, symbol, '?')", `["Alpha","beta",null,null,"","a%b_c"]`},
	{"replace('aaaa', 'aa', 'a')", `["aa","aa","aa","aa","aa","aa"]`},
	{"trim('  ab  ')", `["ab","ab","ab","ab","ab","ab"]`},
	{"trim(name, 'a')", `["Alph","bet",null,"Ünïcode","","%b_c"]`},
	{"ltrim(name, 'AaÜ')", `["lpha","beta",null,"nïcode","","%b_c"]`},
	{"rtrim(name, 'e')", `["Alpha","beta",null,"Ünïcod","","a%b_c"]`},
	{"rtrim(name, 'ecod')", `["Alpha","beta",null,"Ünï","","a%b_"]`},
	{"trim(symbol, '')", `["AAPL","MSFT","GOOG",null,"AAPL","amzn"]`},
	{"ltrim('  x  ')", `["x  ","x  ","x  ","x  ","x  ","x  "]`},
	{"rtrim('  x  ')", `["  x","  x","  x","  x","  x","  x"]`},
	{"trim(name, symbol)", `["lpha","beta",null,null,"","%b_c"]`},
	{"concat(symbol, '-', qty, NULL, flag)", `["AAPL-50true","MSFT-150false","GOOG-","-200true","AAPL-0false","amzn--7"]`},
	{"concat(NULL, name)", `["Alpha","beta","","Ünïcode","","a%b_c"]`},
	{"concat(NULL)", `["","","","","",""]`},
	{"symbol || '-' || qty", `["AAPL-50","MSFT-150",null,null,"AAPL-0","amzn--7"]`},
	{"'a' || 1 + 2", `["a3","a3","a3","a3","a3","a3"]`},
	{"name || NULL", "[null,null,null,null,null,null]"},
	{"small || flag", `["5true","-3false",null,null,"7false",null]`},
	{"split_part('a,b,c', ',', small)", `["","a","",null,"",""]`},
	{"split_part(name, 'a', -1)", `["","",null,"Ünïcode","","%b_c"]`},
	{"split_part(name, '', 2)", `["l","e",null,"n","","%"]`},
	{"split_part(name, 'a', 1)", `["Alph","bet",null,"Ünïcode","",""]`},
	{"split_part('a::b::c', '::', qty)", `["","",null,"","",""]`},
	{"starts_with(name, 'a')", "[false,false,null,false,false,true]"},
	{"starts_with(symbol, '')", "[true,true,true,null,true,true]"},
	{"starts_with(name, symbol)", "[false,false,null,null,false,false]"},
	{"contains(name, '%')", "[false,false,null,false,false,true]"},
	{"contains(symbol, 'A')", "[true,false,false,null,true,false]"},
	{"contains(name, '')", "[true,true,null,true,true,true]"},
	{"length(trim(name, 'a') || symbol)", "[8,7,null,null,4,8]"},
}

// runFuncTests evaluates each case on the test batch, with a checked
// allocator and with one that hands out garbage (a kernel that reads bytes
// it did not write shows up), and on a slice of the batch (array offsets).
func runFuncTests(t *testing.T, tests []struct{ src, want string }) {
	t.Helper()
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	for _, tt := range tests {
		got, _, err := evalJSON(t, mem, rec, tt.src)
		got = unescapeHTML.Replace(got)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.src, got, tt.want)
		}
		if got, _, err := evalJSON(t, poisonAllocator{}, rec, tt.src); err != nil || unescapeHTML.Replace(got) != tt.want {
			t.Errorf("%s on garbage memory:\n got %s %v\nwant %s", tt.src, got, err, tt.want)
		}
		sliced := rec.NewSlice(1, 5)
		got, _, err = evalJSON(t, mem, sliced, tt.src)
		got = unescapeHTML.Replace(got)
		sliced.Release()
		if want := sliceJSON(t, tt.want, 1, 5); err != nil || got != want {
			t.Errorf("%s on rows 1..4:\n got %s %v\nwant %s", tt.src, got, err, want)
		}
	}
}

func TestStringFunctions(t *testing.T) { runFuncTests(t, stringFuncTests) }

func TestStringFunctionErrors(t *testing.T) {
	tests := []compileErrorCase{
		{"substr(qty, 1)", 7, "substr needs a string, got qty (int64)"},
		{"substr(symbol, name)", 15, "substr needs an integer start, got name (large_string)"},
		{"substring(symbol, 1, 2.5)", 21, "substring needs an integer length, got 2.5 (float64)"},
		{"substr(symbol)", 0, "substr takes 2 or 3 arguments, got 1: substr(s, start[, length])"},
		{"replace(symbol, 1, 'x')", 16, "replace needs a string to find, got 1 (int64)"},
		{"trim(symbol, flag)", 13, "trim needs a string of characters to remove, got flag (bool)"},
		{"split_part(symbol, ',', '1')", 24, "split_part needs an integer part number, got '1' (string)"},
		{"starts_with(qty, 'a')", 12, "starts_with needs a string, got qty (int64)"},
		{"contains(symbol, 1)", 17, "contains needs a string to look for, got 1 (int64)"},
		{"symbol || ts2", 10, `unknown column "ts2", did you mean "ts"?`},
		{"concat()", 0, "concat takes at least 1 argument, got 0: concat(a, ...)"},
		{"substr('x', 5000000000)", 0, "cannot evaluate substr('x', 5000000000): substring offset 5000000000 is outside the supported range (-4294967296 to 4294967295)"},
		{"substr('x', 1, -4294967297)", 0, "cannot evaluate substr('x', 1, -4294967297): substring length -4294967297 is outside the supported range (-4294967296 to 4294967295)"},
	}
	checkCompileErrors(t, tests)
	// A run-time error names the call and fails the batch.
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	c, err := Compile("substr(symbol, qty * 100000000)", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Eval(context.Background(), mem, rec); err == nil || err.Error() != "expr: substr(symbol, qty * 100000000): substring offset 5000000000 is outside the supported range (-4294967296 to 4294967295)" {
		t.Errorf("Eval: %v", err)
	}
}

// unescapeHTML undoes the escapes of encoding/json that DuckDB's answers
// do not have.
var unescapeHTML = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&")

// sliceJSON returns elements lo..hi-1 of the JSON array want, as written.
func sliceJSON(t *testing.T, want string, lo, hi int) string {
	t.Helper()
	var elems []json.RawMessage
	if err := json.Unmarshal([]byte(want), &elems); err != nil {
		t.Fatalf("%s: %v", want, err)
	}
	parts := make([]string, 0, hi-lo)
	for _, e := range elems[lo:hi] {
		parts = append(parts, string(e))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// TestFunctionsOnDictionary runs the functions on a dictionary-encoded
// string column, which they decode once and then treat as utf8.
func TestFunctionsOnDictionary(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec, _ := dictBatch(t, mem)
	defer rec.Release()
	for _, tt := range []struct{ src, want string }{
		{"substr(sym, 2, 2)", `["AP","SF","AP",null,"OO"]`},
		{"sym || '!'", `["AAPL!","MSFT!","AAPL!",null,"GOOG!"]`},
		{"concat(sym, NULL, '.')", `["AAPL.","MSFT.","AAPL.",".","GOOG."]`},
		{"trim(sym, 'AL')", `["P","MSFT","P",null,"GOOG"]`},
		{"split_part(sym, 'A', -1)", `["PL","MSFT","PL",null,"GOOG"]`},
		{"regexp_replace(sym, 'O+', '0')", `["AAPL","MSFT","AAPL",null,"G0G"]`},
		{"greatest(sym, 'B')", `["B","MSFT","B","B","GOOG"]`},
		{"nullif(sym, 'AAPL')", `[null,"MSFT",null,null,"GOOG"]`},
		{"hash(sym) = hash('AAPL')", "[true,false,true,false,false]"},
	} {
		got, _, err := evalJSON(t, mem, rec, tt.src)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %s, %v; want %s", tt.src, got, err, tt.want)
		}
	}
}
