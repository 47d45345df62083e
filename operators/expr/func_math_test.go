package expr

import (
	"testing"
)

// The number functions, greatest, least and nullif on the test batch;
// every expected value is DuckDB's (v1.5.6) answer for the same rows.
var mathFuncTests = []struct{ src, want string }{
	{"round(price)", "[11,20,30,null,0,-3]"},
	{"round(price, 1)", "[10.5,20,30.3,null,0,-2.5]"},
	{"round(price, -1)", "[10,20,30,null,0,-0]"}, // DuckDB's is -0 too; its JavaScript client prints 0,
	{"round(price, small)", "[10.5,0,30,null,0,-2.5]"},
	{"round(qty, -1)", "[50,150,null,200,0,-10]"},
	{"round(qty, -2)", "[100,200,null,200,0,0]"},
	{"round(qty, small)", "[50,0,null,null,0,-7]"},
	{"round(qty)", "[50,150,null,200,0,-7]"},
	{"round(small, -1)", "[10,0,0,null,10,100]"},
	{"round(CAST(-2.5 AS double))", "[-3,-3,-3,-3,-3,-3]"},
	{"round(price, NULL)", "[null,null,null,null,null,null]"},
	{"round(NULL)", "[null,null,null,null,null,null]"},
	{"round(f32)", "[2,3,null,-1,0,3]"},
	{"floor(price)", "[10,20,30,null,0,-3]"},
	{"floor(qty)", "[50,150,null,200,0,-7]"},
	{"ceil(price)", "[11,20,31,null,0,-2]"},
	{"ceiling(f32)", "[2,3,null,-1,0,3]"},
	{"ceil(small)", "[5,-3,0,null,7,100]"},
	{"sqrt(abs(qty))", "[7.0710678118654755,12.24744871391589,null,14.142135623730951,0,2.6457513110645907]"},
	{"sqrt(price * price)", "[10.5,20,30.25,null,0,2.5]"},
	{"sqrt(NULL)", "[null,null,null,null,null,null]"},
	{"ln(abs(price) + 1)", "[2.4423470353692043,3.044522437723423,3.4420193761824107,null,0,1.252762968495368]"},
	{"ln(qty + 8)", "[4.060443010546419,5.062595033026967,null,5.337538079701318,2.0794415416798357,0]"},
	{"pow(qty, 2)", "[2500,22500,null,40000,0,49]"},
	{"power(2, small)", "[32,0.125,1,null,128,1.2676506002282294e+30]"},
	{"pow(price, 0.5)", `[3.24037034920393,4.47213595499958,5.5,null,0,"NaN"]`},
	{"pow(10, 400)", `["+Inf","+Inf","+Inf","+Inf","+Inf","+Inf"]`},
	{"pow(-8, 1.0 / 3)", `["NaN","NaN","NaN","NaN","NaN","NaN"]`},
	{"pow(0, -1)", `["+Inf","+Inf","+Inf","+Inf","+Inf","+Inf"]`},
	{"pow(qty, NULL)", "[null,null,null,null,null,null]"},
	{"greatest(qty, small)", "[50,150,0,200,7,100]"},
	{"greatest(qty, small, price)", "[50,150,30.25,200,7,100]"},
	{"least(qty, small)", "[5,-3,0,200,0,-7]"},
	{"least(qty, NULL, 5)", "[5,5,5,5,0,-7]"},
	{"greatest(symbol, name)", `["Alpha","beta","GOOG","Ünïcode","AAPL","amzn"]`},
	{"least(symbol, name, 'B')", `["AAPL","B","B","B","","B"]`},
	{"greatest(flag, false)", "[true,false,false,true,false,false]"},
	{"least(flag, true)", "[true,false,true,true,false,true]"},
	{"greatest(NULL, NULL)", "[null,null,null,null,null,null]"},
	{"nullif(qty, 0)", "[50,150,null,200,null,-7]"},
	{"nullif(qty, small)", "[50,150,null,200,0,-7]"},
	{"nullif(symbol, 'AAPL')", `[null,"MSFT","GOOG",null,null,"amzn"]`},
	{"nullif(price, qty)", "[10.5,20,30.25,null,null,-2.5]"},
	{"nullif(qty, NULL)", "[50,150,null,200,0,-7]"},
	{"nullif(small, 5.0)", "[null,-3,0,null,7,100]"},
	{"nullif(flag, true)", "[null,false,null,null,false,null]"},
}

func TestMathFunctions(t *testing.T) { runFuncTests(t, mathFuncTests) }

func TestMathFunctionErrors(t *testing.T) {
	tests := []compileErrorCase{
		{"round(symbol)", 6, "round needs a number, got symbol (string)"},
		{"round(price, 1.5)", 13, "round needs an integer number of digits, got 1.5 (float64)"},
		{"floor(flag)", 6, "floor needs a number, got flag (bool)"},
		{"pow(2, 'x')", 7, "pow needs a number exponent, got 'x' (string)"},
		{"sqrt(-1)", 0, "cannot evaluate sqrt(-1): cannot take the square root of a negative number (-1)"},
		{"ln(0)", 0, "cannot evaluate ln(0): cannot take the logarithm of zero"},
		{"ln(-2.5)", 0, "cannot evaluate ln(-2.5): cannot take the logarithm of a negative number (-2.5)"},
		{"round(9223372036854775807, -1)", 0, "cannot evaluate round(9223372036854775807, -1): round(9223372036854775807, -1) overflows int64"},
		{"greatest(qty, symbol)", 14, "greatest argument symbol (string) does not match the type of the ones before it (int64)"},
		{"least()", 0, "least takes at least 1 argument, got 0: least(a, ...)"},
		{"nullif(qty, 'a')", 12, "nullif cannot compare qty (int64) with 'a' (string)"},
		{"hash()", 0, "hash takes at least 1 argument, got 0: hash(x, ...)"},
	}
	checkCompileErrors(t, tests)
	// Run-time errors fail the batch; a NULL row does not raise one.
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	for src, want := range map[string]string{
		"sqrt(price)":                            "expr: sqrt(price): cannot take the square root of a negative number (-2.5)",
		"ln(qty + 7)":                            "expr: ln(qty + 7): cannot take the logarithm of zero",
		"ln(small)":                              "expr: ln(small): cannot take the logarithm of a negative number (-3)",
		"sqrt(qty + 7)":                          "",
		"ln(qty + 8)":                            "",
		"sqrt(-price)":                           "expr: sqrt(-price): cannot take the square root of a negative number (-10.5)",
		"round(qty * 46116860184273879 + 7, -1)": "expr: round(qty * 46116860184273879 + 7, -1): round(9223372036854775807, -1) overflows int64",
	} {
		if got := evalError(t, mem, rec, src); got != want {
			t.Errorf("%s: got error %q, want %q", src, got, want)
		}
	}
}
