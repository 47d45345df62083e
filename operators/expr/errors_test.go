package expr

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/engine"
)

// TestAllTypeErrors checks that Compile reports every error of an
// expression, each at its own offset, in source order, and nothing about a
// sub-expression that already failed (no cascade).
func TestAllTypeErrors(t *testing.T) {
	tests := []struct {
		src  string
		want []string // "@offset message"
	}{
		{"qty + 'x' > unknown_col AND lower(5)", []string{
			"@6 operator + needs numeric operands, got 'x' (string)",
			`@12 unknown column "unknown_col"`,
			"@34 lower needs a string, got 5 (int64)",
		}},
		// Both operands of one operator are wrong.
		{"'a' AND 5", []string{
			"@0 AND needs boolean operands, got 'a' (string)",
			"@8 AND needs boolean operands, got 5 (int64)",
		}},
		{"symbol * flag", []string{
			"@0 operator * needs numeric operands, got symbol (string)",
			"@9 operator * needs numeric operands, got flag (bool)",
		}},
		// A poisoned operand adds nothing above it: no "cannot compare".
		{"zzzzzz + 1 = 'x'", []string{`@0 unknown column "zzzzzz"`}},
		{"NOT -zzzzzz", []string{`@5 unknown column "zzzzzz"`}},
		{"abs(lower(1)) > 2 OR flag", []string{"@10 lower needs a string, got 1 (int64)"}},
		{"CAST(zzzzzz AS int) + 1", []string{`@5 unknown column "zzzzzz"`}},
		{"zzzzzz IS NULL AND flag", []string{`@0 unknown column "zzzzzz"`}},
		{"zzzzzz BETWEEN 1 AND 2", []string{`@0 unknown column "zzzzzz"`}},
		// The call is wrong and so are its arguments.
		{"frob(zzzzzz, 1 + 'a')", []string{
			`@0 unknown function "frob"`,
			`@5 unknown column "zzzzzz"`,
			"@17 operator + needs numeric operands, got 'a' (string)",
		}},
		{"lower(zzzzzz, 2)", []string{
			"@0 lower takes 1 argument, got 2: lower(s)",
			`@6 unknown column "zzzzzz"`,
		}},
		{"CAST(zzzzzz AS money)", []string{
			`@0 unknown type "money" in CAST (known: TINYINT, SMALLINT, INTEGER, BIGINT, UTINYINT, USMALLINT, UINTEGER, UBIGINT, FLOAT, DOUBLE, DECIMAL(p, s), VARCHAR, BOOLEAN, DATE, TIMESTAMP, TIMESTAMP_S, TIMESTAMP_MS, TIMESTAMP_NS, TIMESTAMPTZ)`,
			`@5 unknown column "zzzzzz"`,
		}},
		{"count(*) + sum(zzzzzz)", []string{
			"@0 aggregate function count is not allowed here",
			"@11 aggregate function sum is not allowed here",
			`@15 unknown column "zzzzzz"`,
		}},
		// IN, BETWEEN, LIKE, CASE and coalesce report each bad element.
		{"qty IN (1, 'a', zzzzzz, TRUE)", []string{
			"@11 cannot compare qty (int64) with 'a' (string)",
			`@16 unknown column "zzzzzz"`,
			"@24 cannot compare qty (int64) with TRUE (bool)",
		}},
		{"zzzzzz IN (1, 'a', zzzzzz2)", []string{`@0 unknown column "zzzzzz"`, `@19 unknown column "zzzzzz2"`}},
		{"qty BETWEEN 'a' AND 'z'", []string{
			"@12 cannot compare qty (int64) with 'a' (string)",
			"@20 cannot compare qty (int64) with 'z' (string)",
		}},
		{"qty LIKE zzzzzz ESCAPE 1", []string{
			"@0 LIKE needs a string, got qty (int64)",
			`@9 unknown column "zzzzzz"`,
			"@23 ESCAPE must be a one-character string, got 1 (int64)",
		}},
		{"CASE WHEN qty THEN 1 WHEN zzzzzz THEN 'x' ELSE 'y' END", []string{
			"@10 WHEN needs a boolean condition, got qty (int64)",
			`@26 unknown column "zzzzzz"`,
			"@38 CASE result 'x' (string) does not match the type of the ones before it (int64)",
			"@47 CASE result 'y' (string) does not match the type of the ones before it (int64)",
		}},
		{"CASE symbol WHEN 1 THEN zzzzzz WHEN 'a' THEN 2 END", []string{
			"@17 cannot compare symbol (string) with 1 (int64)",
			`@24 unknown column "zzzzzz"`,
		}},
		// A function sees no poisoned argument: only the column is reported.
		{"coalesce(qty, 'a', zzzzzz, 2.5)", []string{`@19 unknown column "zzzzzz"`}},
		{"coalesce(qty, 'a', 2.5, TRUE)", []string{
			"@14 coalesce argument 'a' (string) does not match the type of the ones before it (int64)",
			"@24 coalesce argument TRUE (bool) does not match the type of the ones before it (float64)",
		}},
		// Every wrong argument of a function, and what is wrong inside one.
		{"substr(qty, 'a', flag) || round(symbol, zzzzzz)", []string{
			"@7 substr needs a string, got qty (int64)",
			"@12 substr needs an integer start, got 'a' (string)",
			"@17 substr needs an integer length, got flag (bool)",
			`@40 unknown column "zzzzzz"`,
		}},
		{"regexp_replace(qty, '(', symbol, 'gx')", []string{
			"@15 regexp_replace needs a string, got qty (int64)",
			"@20 regexp_replace: invalid pattern '(': missing closing )",
			"@25 regexp_replace needs a constant string replacement, got symbol (string)",
			`@33 regexp_replace: unknown regexp option "x" (known: c, i, l, m, n, p, s, g)`,
		}},
		{"1 || flag || ts || zzzzzz", []string{`@19 unknown column "zzzzzz"`}},
		// A constant that cannot be folded is one error among others.
		{"9223372036854775807 + 1 > qty AND zzzzzz", []string{
			"@0 cannot evaluate 9223372036854775807 + 1: overflow",
			`@34 unknown column "zzzzzz"`,
		}},
	}
	for _, tt := range tests {
		_, err := Compile(tt.src, testSchema)
		var got []string
		for _, e := range Errors(err) {
			var te *TypeError
			if !errors.As(e, &te) {
				t.Errorf("Compile(%q): %v is not a *TypeError", tt.src, e)
				continue
			}
			got = append(got, fmt.Sprintf("@%d %s", te.Offset, te.Msg))
		}
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("Compile(%q):\n got %s\nwant %s", tt.src, strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
		}
		if len(tt.want) > 1 {
			var l ErrorList
			if !errors.As(err, &l) {
				t.Errorf("Compile(%q): %T, want an ErrorList", tt.src, err)
			}
		}
	}
}

func TestErrorListAccessors(t *testing.T) {
	src := "zzzzzz > 1 AND lower(qty) = 'x'"
	_, err := Compile(src, testSchema)
	if off, msg, ok := Position(err); !ok || off != 0 || msg != `unknown column "zzzzzz"` {
		t.Errorf("Position = %d %q %v, want the first error", off, msg, ok)
	}
	if fe := FieldError("where", err); fe.Offset != 0 || fe.Msg != `unknown column "zzzzzz"` {
		t.Errorf("FieldError = %+v, want the first error", *fe)
	}
	want := engine.Errors{
		&engine.FieldError{Field: "where", Offset: 0, Msg: `unknown column "zzzzzz"`},
		&engine.FieldError{Field: "where", Offset: 21, Msg: "lower needs a string, got qty (int64)"},
	}
	got := FieldErrors("where", fmt.Errorf("wrapped: %w", err))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("FieldErrors =\n%v\nwant\n%v", got, want)
	}
	wantText := "expr: type error at offset 0: unknown column \"zzzzzz\"\nexpr: type error at offset 21: lower needs a string, got qty (int64)"
	if err.Error() != wantText {
		t.Errorf("Error() = %q", err.Error())
	}
	// One error stays a *TypeError; a syntax error stops at the first.
	if _, err := Compile("zzzzzz > 1", testSchema); len(FieldErrors("where", err)) != 1 {
		t.Errorf("one error: %v", FieldErrors("where", err))
	} else if _, isList := err.(ErrorList); isList {
		t.Errorf("one error came back as an ErrorList")
	}
	_, err = Compile("zzzzzz > > 1 AND lower(1)", testSchema)
	var se *SyntaxError
	if es := Errors(err); len(es) != 1 || !errors.As(es[0], &se) || se.Offset != 9 {
		t.Errorf("syntax error: %v", es)
	}
	if Errors(nil) != nil {
		t.Error("Errors(nil) is not nil")
	}
	if _, err := Compile("qty > 1", testSchema); err != nil {
		t.Errorf("a good expression: %v", err)
	}
}
