package expr

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/engine"
)

func TestTypeErrors(t *testing.T) {
	tests := []compileErrorCase{
		{"qyt > 1", 0, `unknown column "qyt", did you mean "qty"?`},
		{"qty > 100 AND prise < 2", 14, `unknown column "prise", did you mean "price"?`},
		{"zzzzzz = 1", 0, `unknown column "zzzzzz"`},
		{`"mixed" = 1`, 0, `unknown column "mixed", did you mean "Mixed"?`},
		{"qty > 100 AND symbol = 100", 14, "cannot compare symbol (string) with 100 (int64)"},
		{"symbol = 100", 0, "cannot compare symbol (string) with 100 (int64)"},
		{"100 < symbol", 0, "cannot compare 100 (int64) with symbol (string)"},
		{"ts > '2024-13-01'", 5, "cannot evaluate '2024-13-01': could not convert string '2024-13-01' to TIMESTAMP: date field value out of range"},
		{"date_part('yaer', ts)", 10, "date_part: unknown part 'yaer', did you mean 'year'?"},
		{"date_trunc('dow', ts)", 11, "date_trunc: unknown part 'dow'"},
		{"date_part(symbol, ts)", 10, "date_part: the part must be a constant string such as 'year', got symbol (string)"},
		{"date_part('year', qty)", 18, "date_part needs a date or a timestamp, got qty (int64)"},
		{"strftime(ts, '%Q')", 13, "strftime: unknown specifier %Q in format '%Q' (known: %Y %y %m %d %H %I %p %M %S %f %g %n %j %b %B %a %A %w %u %U %W %V %G %z %Z %c %x %X %%)"},
		{"strftime(ts, symbol)", 13, "strftime: the format must be a constant string, got symbol (string)"},
		{"strptime(qty, '%Y')", 9, "strptime needs a string, got qty (int64)"},
		{"epoch_ms(symbol)", 9, "epoch_ms needs a date, a timestamp or an integer, got symbol (string)"},
		{"INTERVAL 1 DAY", 0, "INTERVAL 1 DAY is an interval, which cannot be a result: add it to a date or timestamp"},
		{"ts - ts", 0, "ts - ts gives an interval, which cannot be a result here; use epoch_ms(a) - epoch_ms(b)"},
		{"qty + INTERVAL 1 DAY", 0, "operator + does not apply to qty (int64) and INTERVAL 1 DAY (month_day_nano_interval)"},
		{"ts * 2", 0, "operator * needs numeric operands, got ts (timestamp[us])"},
		{"strptime('x', '%Y')", 0, "cannot evaluate strptime('x', '%Y'): could not parse string 'x' according to format '%Y'"},
		{"make_date(2023, 2, 29)", 0, "cannot evaluate make_date(2023, 2, 29): date out of range: 2023-2-29"},
		{"epoch_ms(9223372036854775807)", 0, "cannot evaluate epoch_ms(9223372036854775807): 9223372036854775807 milliseconds is out of the timestamp range"},
		{"DATE '2024-01-01' + 9999999999", 0, "cannot evaluate DATE '2024-01-01' + 9999999999: date out of range"},
		{"TIMESTAMP '294000-01-01' + INTERVAL 1000 YEARS", 0, "cannot evaluate TIMESTAMP '294000-01-01' + INTERVAL 1000 YEARS: result out of range for TIMESTAMP"},
		{"ts + INTERVAL 1 DAY * qty", 22, "an interval may only be multiplied by a constant number, got qty (int64)"},
		{"INTERVAL 1 DAY * 2 + INTERVAL 1 HOUR", 0, "INTERVAL 1 DAY * 2 + INTERVAL 1 HOUR is an interval, which cannot be a result: add it to a date or timestamp"},
		{"CAST(1.5 AS DECIMAL(4,1)) + 1", 0, "operator + does not compute on decimals, got CAST(1.5 AS DECIMAL(4,1)) (decimal(4, 1)): CAST it AS DOUBLE"},
		{"ts = tsz", 0, "cannot compare ts (timestamp[us]) with tsz (timestamp[ns, tz=UTC])"},
		{"flag = 1", 0, "cannot compare flag (bool) with 1 (int64)"},
		{"NOT qty", 4, "NOT needs a boolean, got qty (int64)"},
		{"qty AND flag", 0, "AND needs boolean operands, got qty (int64)"},
		{"flag OR 'x'", 8, "OR needs boolean operands, got 'x' (string)"},
		{"symbol + 1", 0, "operator + needs numeric operands, got symbol (string)"},
		{"1 * ts", 4, "operator * needs numeric operands, got ts (timestamp[us])"},
		{"qty % (flag)", 7, "operator % needs numeric operands, got flag (bool)"},
		{"-symbol", 1, "unary - needs a number, got symbol (string)"},
		{"qty IN (1, 'a')", 11, "cannot compare qty (int64) with 'a' (string)"},
		{"qty BETWEEN 1 AND 'z'", 18, "cannot compare qty (int64) with 'z' (string)"},
		{"flag < true", 0, "cannot order booleans with <: flag and true"},
		{"flag BETWEEN false AND true", 0, "cannot order booleans with BETWEEN"},
		{"qty LIKE 'a%'", 0, "LIKE needs a string, got qty (int64)"},
		{"symbol LIKE symbol", 12, "LIKE pattern must be a constant string, got symbol (string)"},
		{"symbol LIKE 'a' ESCAPE 'ab'", 23, "ESCAPE must be a one-character string, got 'ab' (string)"},
		{"symbol LIKE 'a!' ESCAPE '!'", 12, "LIKE pattern ends with the escape character"},
		{"CAST(qty AS money)", 0, `unknown type "money" in CAST (known: TINYINT, SMALLINT, INTEGER, BIGINT, UTINYINT, USMALLINT, UINTEGER, UBIGINT, FLOAT, DOUBLE, DECIMAL(p, s), VARCHAR, BOOLEAN, DATE, TIMESTAMP, TIMESTAMP_S, TIMESTAMP_MS, TIMESTAMP_NS, TIMESTAMPTZ)`},
		{"CAST(qty AS integr)", 0, `unknown type "integr" in CAST, did you mean "integer"?`},
		{"CAST(qty AS decimal(39, 2))", 0, `DECIMAL precision must be between 1 and 38, got 39`},
		{"CAST(qty AS decimal(5, 6))", 0, `DECIMAL scale must be between 0 and the precision 5, got 6`},
		{"CAST(qty AS int(3))", 0, `type INT takes no parameters`},
		{"CAST(ts AS int)", 0, "cannot cast ts (timestamp[us]) to INTEGER"},
		{"CAST(300 AS tinyint)", 0, "cannot evaluate CAST(300 AS tinyint): value 300 is out of range for TINYINT"},
		{"CAST(-1 AS uinteger)", 0, "cannot evaluate CAST(-1 AS uinteger): value -1 is out of range for UINTEGER"},
		{"CAST(1e300 AS real)", 0, "cannot evaluate CAST(1e300 AS real): value 1e+300 is out of range for FLOAT"},
		{"CAST('2024-02-30' AS date)", 0, "cannot evaluate CAST('2024-02-30' AS date): could not convert string '2024-02-30' to DATE: date field value out of range"},
		{"CAST(flag AS timestamp)", 0, "cannot cast flag (bool) to TIMESTAMP"},
		{"lowr(symbol)", 0, `unknown function "lowr", did you mean "lower"?`},
		{"frobnicate(1)", 0, `unknown function "frobnicate"`},
		{"sum(qty) > 1", 0, "aggregate function sum is not allowed here"},
		{"lower(DISTINCT symbol)", 0, "DISTINCT applies to aggregate functions only, not to lower"},
		{"count(*)", 0, "aggregate function count is not allowed here"},
		{"lower(*)", 6, "* is only allowed in count(*)"},
		{"lower(symbol, 1)", 0, "lower takes 1 argument, got 2: lower(s)"},
		{"coalesce()", 0, "coalesce takes at least 1 argument, got 0: coalesce(a, b, ...)"},
		{"coalesce(qty, 'a')", 14, "coalesce argument 'a' (string) does not match the type of the ones before it (int64)"},
		{"CASE WHEN qty THEN 1 END", 10, "WHEN needs a boolean condition, got qty (int64)"},
		{"CASE WHEN flag THEN 1 ELSE 'x' END", 27, "CASE result 'x' (string) does not match the type of the ones before it (int64)"},
		{"CASE symbol WHEN 1 THEN 2 END", 17, "cannot compare symbol (string) with 1 (int64)"},
		{"abs(symbol)", 4, "abs needs a number, got symbol (string)"},
		{"length(qty)", 7, "length needs a string, got qty (int64)"},
		{"9223372036854775807 + 1", 0, "cannot evaluate 9223372036854775807 + 1: overflow"},
		{"CAST('abc' AS int)", 0, `cannot evaluate CAST('abc' AS int): could not convert string 'abc' to INTEGER`},
		{"TIMESTAMP '1200-01-01 00:00:00.000000001'", 0, "timestamp TIMESTAMP '1200-01-01 00:00:00.000000001' has nanoseconds but is outside the nanosecond range (years 1678-2261)"},
		{"qty > 1 AND lower(qty) = 'x'", 18, "lower needs a string, got qty (int64)"},
	}
	checkCompileErrors(t, tests)
}

func TestFieldError(t *testing.T) {
	_, err := Compile("qty > 100 AND symbol = 100", testSchema)
	fe := FieldError("where", err)
	want := engine.FieldError{Field: "where", Offset: 14, Msg: "cannot compare symbol (string) with 100 (int64)"}
	if *fe != want {
		t.Errorf("FieldError = %+v, want %+v", *fe, want)
	}
	_, err = Compile("qty >", testSchema)
	if fe := FieldError("where", err); fe.Offset != 5 || fe.Msg != "expected an expression, found end of expression" {
		t.Errorf("FieldError(syntax) = %+v", *fe)
	}
	if fe := FieldError("where", fmt.Errorf("wrapped: %w", err)); fe.Offset != 5 {
		t.Errorf("FieldError does not unwrap: %+v", *fe)
	}
	if fe := FieldError("where", errors.New("expr: boom")); fe.Offset != -1 || fe.Msg != "expr: boom" {
		t.Errorf("FieldError(plain) = %+v", *fe)
	}
}

func TestAmbiguousColumns(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "Ab", Type: arrow.PrimitiveTypes.Int64},
		{Name: "aB", Type: arrow.PrimitiveTypes.Int64},
		{Name: "dup", Type: arrow.PrimitiveTypes.Int64},
		{Name: "dup", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	for src, want := range map[string]string{
		"ab":  `column name "ab" is ambiguous: 2 columns match`,
		"dup": `column name "dup" is ambiguous: 2 columns match`,
	} {
		_, err := Compile(src, schema)
		if _, msg, _ := Position(err); msg != want {
			t.Errorf("Compile(%q): %v, want %s", src, err, want)
		}
	}
	for _, src := range []string{"Ab", "aB", `"Ab"`} {
		if _, err := Compile(src, schema); err != nil {
			t.Errorf("Compile(%q): %v", src, err)
		}
	}
}

func TestTypesAndColumns(t *testing.T) {
	tests := []struct {
		src  string
		typ  string
		cols []int
	}{
		{"qty", "int64", []int{0}},
		{"small", "int32", []int{5}},
		{"QTY", "int64", []int{0}},
		{`"my col"`, "int64", []int{9}},
		{"small + 1", "int64", []int{5}},
		{"price * qty", "float64", []int{0, 1}},
		{"qty / 2", "int64", []int{0}},
		{"qty / 2.0", "float64", []int{0}},
		{"f32 + 1", "float64", []int{7}},
		{"name", "large_utf8", []int{6}},
		{"lower(name)", "utf8", []int{6}},
		{"length(symbol)", "int64", []int{2}},
		{"CAST(qty AS int32)", "int32", []int{0}},
		{"CAST(qty AS smallint)", "int16", []int{0}},
		{"CAST(qty AS decimal(10, 2))", "decimal(10, 2)", []int{0}},
		{"CAST(symbol AS timestamp with time zone)", "timestamp[us, tz=UTC]", []int{2}},
		{"CAST(ts AS date)", "date32", []int{4}},
		{"CASE WHEN flag THEN ts END", "timestamp[us]", []int{3, 4}},
		{"coalesce(ts, TIMESTAMP '2024-01-01')", "timestamp[us]", []int{4}},
		{"coalesce(tsz, TIMESTAMP '2024-01-01')", "timestamp[ns, tz=UTC]", []int{8}},
		{"coalesce(null, qty)", "int64", []int{0}},
		{"null", "null", []int{}},
		{"CASE WHEN flag THEN null END", "null", []int{3}},
		{"qty = null", "bool", []int{0}},
		{"qty > 100 AND symbol IN ('AAPL', 'MSFT')", "bool", []int{0, 2}},
		{"abs(f32)", "float64", []int{7}},
		{"-small", "int64", []int{5}},
	}
	for _, tt := range tests {
		c, err := Compile(tt.src, testSchema)
		if err != nil {
			t.Errorf("Compile(%q): %v", tt.src, err)
			continue
		}
		if got := c.Type().String(); got != tt.typ {
			t.Errorf("Compile(%q).Type() = %s, want %s", tt.src, got, tt.typ)
		}
		if fmt.Sprint(c.Columns()) != fmt.Sprint(tt.cols) {
			t.Errorf("Compile(%q).Columns() = %v, want %v", tt.src, c.Columns(), tt.cols)
		}
	}
}

// TestPlans checks constant folding and how operands are brought to a common
// type: a narrow column compared with a constant that fits is not cast.
func TestPlans(t *testing.T) {
	tests := []struct{ src, want string }{
		{"1 + 2 * 3", "const(7 int64)"},
		{"lower('ABC') = 'abc'", "const(true bool)"},
		{"CAST('12' AS int) + qty", "add(const(12 int64), col(0 int64))"},
		{"small = 5", "equal(col(5 int32), const(5 int32))"},
		{"5 = small", "equal(const(5 int32), col(5 int32))"},
		{"small = 5000000000", "equal(cast<int64>(col(5 int32)), const(5000000000 int64))"},
		{"small IN (1, 2)", "is_in(col(5 int32))"},
		{"qty > 1.5", "greater(cast<float64>(col(0 int64)), const(1.5 float64))"},
		{"name = 'x'", "equal(cast<string>(col(6 large_string)), const(x string))"},
		{"ts > TIMESTAMP '2024-01-01'", "greater(col(4 timestamp[us]), const(2024-01-01 00:00:00 timestamp[us]))"},
		{"tsz > TIMESTAMP '2024-01-01'", "greater(col(8 timestamp[ns, tz=UTC]), const(2024-01-01 00:00:00Z timestamp[ns, tz=UTC]))"},
		{"flag AND NULL", "and_kleene(col(3 bool), const(null bool))"},
		{"qty + NULL", "const(null int64)"},
		{"qty = NULL", "const(null bool)"},
		{"NULL IS NULL", "const(true bool)"},
		{"qty IS NULL", "is_null(col(0 int64))"},
		{"NOT flag", "not(col(3 bool))"},
	}
	for _, tt := range tests {
		c, err := Compile(tt.src, testSchema)
		if err != nil {
			t.Errorf("Compile(%q): %v", tt.src, err)
			continue
		}
		if got := describeNode(c.root); got != tt.want {
			t.Errorf("Compile(%q):\n got %s\nwant %s", tt.src, got, tt.want)
		}
	}
}

func TestCompileExprSubtree(t *testing.T) {
	src := "sum(price * qty) / sum(qtty)"
	e, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	var args []Expr
	Walk(e, func(x Expr) bool {
		if c, ok := x.(*Call); ok && c.Name == "sum" {
			args = append(args, c.Args[0])
			return false
		}
		return true
	})
	if len(args) != 2 {
		t.Fatalf("found %d sum arguments", len(args))
	}
	c, err := CompileExpr(src, args[0], testSchema)
	if err != nil || c.Type().ID() != arrow.FLOAT64 {
		t.Errorf("CompileExpr(price * qty): %v", err)
	}
	_, err = CompileExpr(src, args[1], testSchema)
	if off, msg, _ := Position(err); off != 23 || !strings.HasPrefix(msg, `unknown column "qtty"`) {
		t.Errorf("CompileExpr(qtty): %v", err)
	}
}
