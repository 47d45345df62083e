package expr

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Rows of the test batch (see helpers_test.go):
//
//	   qty   price  symbol flag  ts                   small name      f32
//	0  50    10.5   AAPL   true  2024-01-01 00:00:00  5     Alpha     1.5
//	1  150   20     MSFT   false 2024-01-02 03:04:05  -3    beta      2.5
//	2  null  30.25  GOOG   null  null                 0     null      null
//	3  200   null   null   true  2024-06-30 12:00:00  null  Ünïcode   -1
//	4  0     0      AAPL   false 2023-12-31 23:59:59  7     ""        0
//	5  -7    -2.5   amzn   null  2024-01-02 00:00:00  100   a%b_c     3
var evalTests = []struct{ src, want string }{
	// literals
	{"42", "[42,42,42,42,42,42]"},
	{"1.5", "[1.5,1.5,1.5,1.5,1.5,1.5]"},
	{"'x'", `["x","x","x","x","x","x"]`},
	{"TRUE", "[true,true,true,true,true,true]"},
	{"null", "[null,null,null,null,null,null]"},
	{"TIMESTAMP '2024-01-02 03:04:05'", `["2024-01-02T03:04:05","2024-01-02T03:04:05","2024-01-02T03:04:05","2024-01-02T03:04:05","2024-01-02T03:04:05","2024-01-02T03:04:05"]`},
	// columns
	{"qty", "[50,150,null,200,0,-7]"},
	{`"my col"`, "[1,2,null,4,5,6]"},
	{"MIXED", "[10,20,30,40,50,60]"},
	// arithmetic
	{"qty + 1", "[51,151,null,201,1,-6]"},
	{"qty - small", "[45,153,null,null,-7,-107]"},
	{"qty * 2", "[100,300,null,400,0,-14]"},
	{"price * qty", "[525,3000,null,null,0,17.5]"},
	{"f32 * 2", "[3,5,null,-2,0,6]"},
	{"1 + 2 * 3 - 4", "[3,3,3,3,3,3]"},
	{"-qty", "[-50,-150,null,-200,0,7]"},
	{"- -qty", "[50,150,null,200,0,-7]"},
	{"+qty", "[50,150,null,200,0,-7]"},
	{"abs(qty - 100)", "[50,50,null,100,100,107]"},
	{"abs(price)", "[10.5,20,30.25,null,0,2.5]"},
	{"abs(small)", "[5,3,0,null,7,100]"},
	// division and modulo: integer division truncates, zero divisor is NULL
	{"qty / 7", "[7,21,null,28,0,-1]"},
	{"qty / 0", "[null,null,null,null,null,null]"},
	{"qty / small", "[10,-50,null,null,0,0]"},
	{"small / qty", "[0,0,null,null,null,-14]"},
	{"100 / qty", "[2,0,null,0,null,-14]"},
	{"qty / 2.0", "[25,75,null,100,0,-3.5]"},
	{"price / 4", "[2.625,5,7.5625,null,0,-0.625]"},
	{"price / 0", "[null,null,null,null,null,null]"},
	{"price / price", "[1,1,1,null,null,1]"},
	{"1 / 0", "[null,null,null,null,null,null]"},
	{"7 / 2 + -7 / 2", "[0,0,0,0,0,0]"},
	{"qty % 7", "[1,3,null,4,0,0]"},
	{"qty % 0", "[null,null,null,null,null,null]"},
	{"-7 % 2", "[-1,-1,-1,-1,-1,-1]"},
	{"7 % -2", "[1,1,1,1,1,1]"},
	{"price % 3", "[1.5,2,0.25,null,0,-2.5]"},
	{"qty % (small - 5)", "[null,6,null,null,0,-7]"},
	{"(qty * 0 - 9223372036854775807 - 1) % -1", "[0,0,null,0,0,0]"},
	// comparisons
	{"qty > 100", "[false,true,null,true,false,false]"},
	{"qty >= 150", "[false,true,null,true,false,false]"},
	{"qty <= 0", "[false,false,null,false,true,true]"},
	{"qty <> 50", "[false,true,null,true,true,true]"},
	{"qty == 50", "[true,false,null,false,false,false]"},
	{"50 = qty", "[true,false,null,false,false,false]"},
	{"symbol = 'AAPL'", "[true,false,false,null,true,false]"},
	{"symbol < 'B'", "[true,false,false,null,true,false]"},
	{"price > qty", "[false,false,null,null,false,true]"},
	{"small = 5", "[true,false,false,null,false,false]"},
	{"small < 3000000000", "[true,true,true,null,true,true]"},
	{"f32 > 1.4", "[true,true,null,false,false,true]"},
	{"flag = true", "[true,false,null,true,false,null]"},
	{"flag != false", "[true,false,null,true,false,null]"},
	{"name = 'beta'", "[false,true,null,false,false,false]"},
	{`"my col" > 2`, "[false,false,null,true,true,true]"},
	{"qty = NULL", "[null,null,null,null,null,null]"},
	{"ts >= TIMESTAMP '2024-01-02'", "[false,true,null,true,false,true]"},
	{"ts = TIMESTAMP '2024-01-02 03:04:05'", "[false,true,null,false,false,false]"},
	{"ts > TIMESTAMP '2024-01-01 00:00:00.0000005'", "[false,true,null,true,false,true]"},
	{"tsz < TIMESTAMP '2024-01-01 00:00:01'", "[true,false,null,false,true,false]"},
	{"tsz < TIMESTAMP '2024-01-01T02:00:01+02:00'", "[true,false,null,false,true,false]"},
	{"ts > CAST('2024-01-01 12:00:00' AS timestamp)", "[false,true,null,true,false,true]"},
	// three-valued logic
	{"flag AND qty > 100", "[false,false,null,true,false,false]"},
	{"flag OR qty > 100", "[true,true,null,true,false,null]"},
	{"flag AND NULL", "[null,false,null,null,false,null]"},
	{"flag OR NULL", "[true,null,null,true,null,null]"},
	{"NOT flag", "[false,true,null,false,true,null]"},
	{"NOT (flag AND NULL)", "[null,true,null,null,true,null]"},
	{"TRUE AND NULL", "[null,null,null,null,null,null]"},
	{"FALSE AND NULL", "[false,false,false,false,false,false]"},
	{"NULL OR TRUE", "[true,true,true,true,true,true]"},
	{"NOT NULL", "[null,null,null,null,null,null]"},
	// IN
	{"symbol IN ('AAPL', 'MSFT')", "[true,true,false,null,true,false]"},
	{"symbol NOT IN ('AAPL', 'MSFT')", "[false,false,true,null,false,true]"},
	{"symbol IN ('AAPL', NULL)", "[true,null,null,null,true,null]"},
	{"symbol NOT IN ('AAPL', NULL)", "[false,null,null,null,false,null]"},
	{"small IN (5, 7, 100)", "[true,false,false,null,true,true]"},
	{"qty IN (small, 50)", "[true,false,null,null,false,false]"},
	{"qty IN (50.0, 0)", "[true,false,null,false,true,false]"},
	{"name IN ('Alpha', 'Ünïcode')", "[true,false,null,true,false,false]"},
	{"ts IN (TIMESTAMP '2024-01-01')", "[true,false,null,false,false,false]"},
	{"flag IN (TRUE)", "[true,false,null,true,false,null]"},
	{"1 IN (1, 2)", "[true,true,true,true,true,true]"},
	// a longer list of strings, with a NULL
	{"symbol IN ('a','b','c','d','e','f','g','h','i','j','k','l','m','n','o','p','q','AAPL', NULL)", "[true,null,null,null,true,null]"},
	{"symbol NOT IN ('a','b','c','d','e','f','g','h','i','j','k','l','m','n','o','p','q','AAPL')", "[false,true,true,null,false,true]"},
	{"NULL IN (1, 2)", "[null,null,null,null,null,null]"},
	// BETWEEN
	{"qty BETWEEN 0 AND 150", "[true,true,null,false,true,false]"},
	{"qty NOT BETWEEN 0 AND 150", "[false,false,null,true,false,true]"},
	{"NULL BETWEEN NULL AND NULL", "[null,null,null,null,null,null]"},
	{"NULL NOT BETWEEN NULL AND NULL", "[null,null,null,null,null,null]"},
	{"price BETWEEN qty AND 100", "[false,false,null,null,true,true]"},
	{"ts BETWEEN TIMESTAMP '2024-01-01' AND TIMESTAMP '2024-01-02'", "[true,false,null,false,false,true]"},
	{"symbol BETWEEN 'A' AND 'H'", "[true,false,true,null,true,false]"},
	// IS NULL
	{"qty IS NULL", "[false,false,true,false,false,false]"},
	{"symbol IS NOT NULL", "[true,true,true,false,true,true]"},
	{"qty + price IS NULL", "[false,false,true,true,false,false]"},
	{"NULL IS NOT NULL", "[false,false,false,false,false,false]"},
	// LIKE
	{"symbol LIKE 'A%'", "[true,false,false,null,true,false]"},
	{"symbol LIKE '%L'", "[true,false,false,null,true,false]"},
	{"symbol LIKE '%O%'", "[false,false,true,null,false,false]"},
	{"symbol LIKE 'A__L'", "[true,false,false,null,true,false]"},
	{"symbol LIKE 'AAPL'", "[true,false,false,null,true,false]"},
	{"symbol NOT LIKE 'A%'", "[false,true,true,null,false,true]"},
	{"name LIKE '%!%%' ESCAPE '!'", "[false,false,null,false,false,true]"},
	{`name LIKE 'a\%b\_c' ESCAPE '\'`, "[false,false,null,false,false,true]"},
	{"name LIKE '_n_c%'", "[false,false,null,true,false,false]"},
	{"name LIKE '%'", "[true,true,null,true,true,true]"},
	{"name LIKE ''", "[false,false,null,false,true,false]"},
	{"name LIKE 'A%a'", "[true,false,null,false,false,false]"},
	{"lower(name) LIKE '%a%'", "[true,true,null,false,false,true]"},
	{"symbol LIKE NULL", "[null,null,null,null,null,null]"},
	// CASE
	{"CASE WHEN qty > 100 THEN 'big' WHEN qty > 10 THEN 'mid' ELSE symbol END", `["mid","big","GOOG","big","AAPL","amzn"]`},
	{"CASE WHEN flag THEN qty END", "[50,null,null,200,null,null]"},
	{"CASE WHEN flag THEN 1 WHEN NOT flag THEN 0 ELSE -1 END", "[1,0,-1,1,0,-1]"},
	{"CASE WHEN qty > 0 THEN price ELSE qty END", "[10.5,20,null,null,0,-7]"},
	{"CASE symbol WHEN 'AAPL' THEN 1 WHEN 'MSFT' THEN 2 END", "[1,2,null,null,1,null]"},
	{"CASE NULL WHEN NULL THEN 1 ELSE qty END", "[50,150,null,200,0,-7]"},
	{"CASE NULL WHEN NULL THEN 1 END", "[null,null,null,null,null,null]"},
	{"CASE small WHEN 5 THEN 'five' WHEN 100 THEN 'hundred' ELSE 'other' END", `["five","other","other","other","other","hundred"]`},
	{"CASE WHEN flag THEN flag ELSE qty > 100 END", "[true,true,null,true,false,false]"},
	{"CASE WHEN TRUE THEN qty END", "[50,150,null,200,0,-7]"},
	{"CASE WHEN 1 = 1 THEN 'x' ELSE 'y' END", `["x","x","x","x","x","x"]`},
	{"CASE WHEN flag THEN ts ELSE TIMESTAMP '2000-01-01' END", `["2024-01-01T00:00:00","2000-01-01T00:00:00","2000-01-01T00:00:00","2024-06-30T12:00:00","2000-01-01T00:00:00","2000-01-01T00:00:00"]`},
	{"CASE WHEN qty / 0 IS NULL THEN 1 END", "[1,1,1,1,1,1]"},
	// coalesce
	{"coalesce(qty, small, 99)", "[50,150,0,200,0,-7]"},
	{"coalesce(price, qty, -1.5)", "[10.5,20,30.25,200,0,-2.5]"},
	{"coalesce(symbol, name, 'none')", `["AAPL","MSFT","GOOG","Ünïcode","AAPL","amzn"]`},
	{"coalesce(symbol, lower(name))", `["AAPL","MSFT","GOOG","ünïcode","AAPL","amzn"]`},
	{"coalesce(flag, qty > 100)", "[true,false,null,true,false,false]"},
	{"coalesce(NULL, 'x')", `["x","x","x","x","x","x"]`},
	{"coalesce(qty)", "[50,150,null,200,0,-7]"},
	{"coalesce(ts, TIMESTAMP '1999-12-31')", `["2024-01-01T00:00:00","2024-01-02T03:04:05","1999-12-31T00:00:00","2024-06-30T12:00:00","2023-12-31T23:59:59","2024-01-02T00:00:00"]`},
	// CAST
	{"CAST(price AS int)", "[10,20,30,null,0,-2]"}, // DuckDB rounds a DOUBLE half to even
	{"CAST(price * 2 + 0.5 AS int32)", "[22,40,61,null,0,-4]"},
	{"CAST(2.5 AS int) + qty * 0", "[3,3,null,3,3,3]"}, // 2.5 is an exact decimal: half away from zero
	{"CAST(3.5 AS int) + qty * 0", "[4,4,null,4,4,4]"},
	{"CAST(-2.5 AS int) + qty * 0", "[-3,-3,null,-3,-3,-3]"},
	{"CAST(qty AS double) / 100", "[0.5,1.5,null,2,0,-0.07]"},
	{"CAST(qty * 0 + 9007199254740993 AS double)", "[9007199254740992,9007199254740992,null,9007199254740992,9007199254740992,9007199254740992]"},
	{"CAST(qty * 0 + 9223372036854775807 AS double)", "[9223372036854776000,9223372036854776000,null,9223372036854776000,9223372036854776000,9223372036854776000]"},
	{"CAST(price * 0 - 9223372036854775808.0 AS bigint)", "[-9223372036854775808,-9223372036854775808,-9223372036854775808,null,-9223372036854775808,-9223372036854775808]"},
	{"CAST(price * 0 + 2147483647.4 AS int32)", "[2147483647,2147483647,2147483647,null,2147483647,2147483647]"},
	{"CAST(qty AS string)", `["50","150",null,"200","0","-7"]`},
	{"CAST(price AS varchar)", `["10.5","20.0","30.25",null,"0.0","-2.5"]`},
	{"CAST(f32 AS text)", `["1.5","2.5",null,"-1.0","0.0","3.0"]`},
	{"CAST(flag AS string)", `["true","false",null,"true","false",null]`},
	{"CAST(ts AS string)", `["2024-01-01 00:00:00","2024-01-02 03:04:05",null,"2024-06-30 12:00:00","2023-12-31 23:59:59","2024-01-02 00:00:00"]`},
	{"CAST(tsz AS string)", `["2024-01-01 00:00:00+00","2024-01-02 03:04:05+00",null,"2024-06-30 12:00:00+00","2023-12-31 23:59:59+00","2024-01-02 00:00:00+00"]`},
	{"CAST(flag AS int)", "[1,0,null,1,0,null]"},
	{"CAST(qty AS bool)", "[true,true,null,true,false,true]"},
	{"CAST(small AS int32)", "[5,-3,0,null,7,100]"},
	{"CAST(qty AS int32)", "[50,150,null,200,0,-7]"},
	{"CAST(name AS string)", `["Alpha","beta",null,"Ünïcode","","a%b_c"]`},
	{"CAST('2024-01-02 03:04:05' AS timestamp) = ts", "[false,true,null,false,false,false]"},
	{"CAST(NULL AS int)", "[null,null,null,null,null,null]"},
	// string functions
	{"lower(symbol)", `["aapl","msft","goog",null,"aapl","amzn"]`},
	{"upper(name)", `["ALPHA","BETA",null,"ÜNÏCODE","","A%B_C"]`},
	{"lower(name)", `["alpha","beta",null,"ünïcode","","a%b_c"]`},
	{"length(name)", "[5,4,null,7,0,5]"},
	{"length(symbol)", "[4,4,4,null,4,4]"},
	{"length(lower(name)) + 1", "[6,5,null,8,1,6]"},
	{"lower('ÀÉÎ')", `["àéî","àéî","àéî","àéî","àéî","àéî"]`},
	{"upper(NULL)", "[null,null,null,null,null,null]"},
}

func TestEval(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	for _, tt := range evalTests {
		got, _, err := evalJSON(t, mem, rec, tt.src)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.src, got, tt.want)
		}
	}
}

// TestEvalPoisoned evaluates with an allocator whose fresh memory is
// garbage: every kernel must write every byte it hands out.
func TestEvalPoisoned(t *testing.T) {
	mem := memory.NewCheckedAllocator(poisonAllocator{})
	defer mem.AssertSize(t, 0)
	ref := newMem()
	defer ref.AssertSize(t, 0)
	rec := testBatch(t, ref)
	defer rec.Release()
	for _, tt := range evalTests {
		got, _, err := evalJSON(t, mem, rec, tt.src)
		if err != nil || got != tt.want {
			t.Errorf("%s:\n got %s, %v\nwant %s", tt.src, got, err, tt.want)
		}
	}
	for _, off := range []int64{1, 3} {
		sliced := rec.NewSlice(off, rec.NumRows())
		for _, src := range []string{"flag", "NOT flag", "qty IS NULL", "coalesce(flag, qty > 100)", "CAST(flag AS int)"} {
			want, _, _ := evalJSON(t, ref, sliced, src)
			if got, _, err := evalJSON(t, mem, sliced, src); err != nil || got != want {
				t.Errorf("%s (offset %d): got %s, %v; want %s", src, off, got, err, want)
			}
		}
		sliced.Release()
	}
}

// TestEvalSliced evaluates on a slice of the batch (non-zero array offsets),
// which the kernels reading raw buffers must honour.
func TestEvalSliced(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	full := testBatch(t, mem)
	defer full.Release()
	for _, off := range []int64{1, 3} {
		rec := full.NewSlice(off, full.NumRows())
		for _, tt := range evalTests {
			c, err := Compile(tt.src, testSchema)
			if err != nil {
				t.Fatalf("%s: %v", tt.src, err)
			}
			arr, err := c.Eval(context.Background(), mem, rec)
			if err != nil {
				t.Errorf("%s: %v", tt.src, err)
				continue
			}
			want, _, err := array.FromJSON(mem, c.Type(), strings.NewReader(tt.want))
			if err != nil {
				// JSON for timestamps is written for display; compare text instead.
				b, _ := arr.MarshalJSON()
				wantAll := tt.want
				if !strings.Contains(wantAll, strings.TrimPrefix(strings.TrimSuffix(string(b), "]"), "[")) {
					t.Errorf("%s (offset %d): got %s, want a suffix of %s", tt.src, off, b, wantAll)
				}
				arr.Release()
				continue
			}
			wantSlice := array.NewSlice(want, off, int64(want.Len()))
			if !array.Equal(arr, wantSlice) {
				t.Errorf("%s (offset %d):\n got %v\nwant %v", tt.src, off, arr, wantSlice)
			}
			wantSlice.Release()
			want.Release()
			arr.Release()
		}
		rec.Release()
	}
}

func TestEvalRuntimeErrors(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	for src, want := range map[string]string{
		"qty * 9223372036854775807":                                "expr: qty * 9223372036854775807: invalid: overflow",
		"CAST(symbol AS int)":                                      `expr: CAST(symbol AS int): could not convert string 'AAPL' to INTEGER`,
		"CAST(qty * 1 AS tinyint)":                                 `expr: CAST(qty * 1 AS tinyint): value 150 is out of range for TINYINT`,
		"CASE WHEN flag THEN 1 ELSE qty * 9223372036854775807 END": "overflow",
		"abs(qty - 9223372036854775807 - 1)":                       "overflow",
		"(qty * 0 - 9223372036854775807 - 1) / -1":                 "expr: (qty * 0 - 9223372036854775807 - 1) / -1: invalid: overflow",
		"(( qty * 0 + 9223372036854775807)) + 1":                   "expr: (( qty * 0 + 9223372036854775807)) + 1: invalid: overflow",
		"CAST(price * 1e300 AS bigint)":                            "expr: CAST(price * 1e300 AS bigint): value 1.0500000000000001e+301 is out of range for BIGINT",
		"CAST(price * 0 + 9223372036854775808.0 AS bigint)":        "value 9.223372036854776e+18 is out of range for BIGINT",
		"CAST(price * 1e308 * 10 AS bigint)":                       "value inf is out of range for BIGINT",
		"CAST(price * 0 + CAST('nan' AS double) AS int)":           "value nan is out of range for INTEGER",
		"CAST(price * 100000000 AS int32)":                         "value 3025000000.0 is out of range for INTEGER",
		"CAST(price * 0 + 2147483647.5 AS int32)":                  "value 2147483647.5 is out of range for INTEGER",
		"CAST(f32 * 1e30 AS bigint)":                               "value 1.5000000000000002e+30 is out of range for BIGINT",
	} {
		_, _, err := evalJSON(t, mem, rec, src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got error %v, want %q", src, err, want)
		}
	}
}

func TestEvalDictionary(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	b := array.NewDictionaryBuilder(mem, dt).(*array.BinaryDictionaryBuilder)
	for _, s := range []string{"AAPL", "MSFT", "AAPL", "", "GOOG"} {
		if s == "" {
			b.AppendNull()
		} else if err := b.AppendString(s); err != nil {
			t.Fatal(err)
		}
	}
	col := b.NewArray()
	b.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "sym", Type: dt, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))
	col.Release()
	defer rec.Release()
	for src, want := range map[string]string{
		"sym = 'AAPL'":            "[true,false,true,null,false]",
		"sym IN ('MSFT', 'GOOG')": "[false,true,false,null,true]",
		"lower(sym)":              `["aapl","msft","aapl",null,"goog"]`,
		"sym LIKE '%L'":           "[true,false,true,null,false]",
		"coalesce(sym, 'none')":   `["AAPL","MSFT","AAPL","none","GOOG"]`,
		"sym IS NULL":             "[false,false,false,true,false]",
	} {
		got, _, err := evalJSON(t, mem, rec, src)
		if err != nil || got != want {
			t.Errorf("%s: got %s, %v; want %s", src, got, err, want)
		}
	}
	// A bare dictionary column is returned as it is.
	c, err := Compile("sym", schema)
	if err != nil || !arrow.TypeEqual(c.Type(), dt) {
		t.Errorf("Compile(sym): %v, %v", c, err)
	}
}

func TestEvalSchemaMismatch(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	other := arrow.NewSchema([]arrow.Field{{Name: "qty", Type: arrow.BinaryTypes.String}}, nil)
	c, err := Compile("qty = 'x'", other)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Eval(context.Background(), mem, rec)
	want := `expr: "qty = 'x'" was compiled for column 0 (qty) of type string, the batch has int64`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	wide := arrow.NewSchema(append(testSchema.Fields(), arrow.Field{Name: "extra", Type: arrow.PrimitiveTypes.Int64}), nil)
	c, err = Compile("extra + 1", wide)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Eval(context.Background(), mem, rec); err == nil || !strings.Contains(err.Error(), "reads column 11 (extra) but the batch has 11 columns") {
		t.Errorf("got %v", err)
	}
}

func TestEvalCancelled(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	c, err := Compile("qty + 1 > price", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Eval(ctx, mem, rec); !errors.Is(err, context.Canceled) {
		t.Errorf("Eval with a cancelled context: %v", err)
	}
}

// TestEvalEmpty evaluates every construct on a zero-row batch.
func TestEvalEmpty(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec, _, err := array.RecordFromJSON(mem, testSchema, strings.NewReader("[]"))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	for _, tt := range evalTests {
		got, _, err := evalJSON(t, mem, rec, tt.src)
		if err != nil || got != "[]" {
			t.Errorf("%s on 0 rows: %s, %v", tt.src, got, err)
		}
	}
}

var _ memory.Allocator = (*memory.CheckedAllocator)(nil)
