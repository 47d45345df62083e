package expr

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePrecedence(t *testing.T) {
	tests := []struct{ src, want string }{
		{"a + b * c", "(a + (b * c))"},
		{"a * b + c", "((a * b) + c)"},
		{"a - b - c", "((a - b) - c)"},
		{"a % b / c", "((a % b) / c)"},
		{"-a * b", "((-a) * b)"},
		{"- 5 * 2", "(-5 * 2)"},
		{"1 + -2", "(1 + -2)"},
		{"-(5)", "(-(5))"},
		{"--5", "(-(-5))"},
		{"+a", "(+a)"},
		{"-9223372036854775808", "-9223372036854775808"},
		{"a OR b AND c", "(a OR (b AND c))"},
		{"a AND b OR c AND d", "((a AND b) OR (c AND d))"},
		{"NOT a = b", "(NOT (a = b))"},
		{"NOT a AND b", "((NOT a) AND b)"},
		{"NOT NOT a", "(NOT (NOT a))"},
		{"a = 1 OR b <> 2 AND NOT c", "((a = 1) OR ((b != 2) AND (NOT c)))"},
		{"a == 1", "(a = 1)"},
		{"count(DISTINCT x + 1)", "count(DISTINCT (x + 1))"},
		{"count(distinct)", "count(distinct)"}, // a column named distinct
		{"f(distinct, 1)", "f(distinct, 1)"},
		{"a < b = c", "((a < b) = c)"},
		{"a + 1 > b * 2", "((a + 1) > (b * 2))"},
		{"x BETWEEN 1 AND 2 AND y", "((x BETWEEN 1 AND 2) AND y)"},
		{"x NOT BETWEEN a + 1 AND b * 2", "(x NOT BETWEEN (a + 1) AND (b * 2))"},
		{"x IN (1, 2) = TRUE", "((x IN (1, 2)) = TRUE)"},
		{"x not in ('a', NULL)", "(x NOT IN ('a', NULL))"},
		{"x IN (a + 1, (b))", "(x IN ((a + 1), b))"},
		{"x IS NOT NULL AND y IS NULL", "((x IS NOT NULL) AND (y IS NULL))"},
		{"x IS NULL IS NULL", "((x IS NULL) IS NULL)"},
		{"s NOT LIKE 'a%' ESCAPE '!'", "(s NOT LIKE 'a%' ESCAPE '!')"},
		{"s LIKE 'a' || TRUE", "(s LIKE ('a' || TRUE))"},
		{"'a' || 1 + 2", "('a' || (1 + 2))"},
		{"2 * 3 || 4 = x || 'y'", "(((2 * 3) || 4) = (x || 'y'))"},
		{"a || b || c", "((a || b) || c)"},
		{"x BETWEEN a || b AND c", "(x BETWEEN (a || b) AND c)"},
		{"CASE WHEN a THEN 1 ELSE 2 END", "CASE WHEN a THEN 1 ELSE 2 END"},
		{"case x when 1 then 'a' when 2 then 'b' end", "CASE x WHEN 1 THEN 'a' WHEN 2 THEN 'b' END"},
		{"CAST(x AS INT) + 1", "(CAST(x AS int) + 1)"},
		{`"my col" == 1`, `("my col" = 1)`},
		{`"say ""hi""" = 'it''s'`, `("say ""hi""" = 'it''s')`},
		{`"end" + "x"`, `("end" + "x")`}, {`"end" + x`, `("end" + x)`},
		{"timestamp = TIMESTAMP '2024-01-02'", "(timestamp = TIMESTAMP '2024-01-02 00:00:00')"},
		{"DATE '2024-01-02'", "DATE '2024-01-02'"},
		{"TIMESTAMPTZ '2024-01-02T03:04:05+02:00'", "TIMESTAMPTZ '2024-01-02 01:04:05Z'"},
		{"INTERVAL '90 minutes'", "INTERVAL '01:30:00'"},
		{"INTERVAL 2 DAY", "INTERVAL '2 days'"},
		{"INTERVAL '1 year 14 months 3 days 01:02:03.5'", "INTERVAL '2 years 2 months 3 days 01:02:03.5'"},
		{"ts + INTERVAL (3) HOUR", "(ts + INTERVAL '03:00:00')"},
		{"EXTRACT(year FROM ts)", "date_part('year', ts)"},
		{"CAST(x AS double precision)", "CAST(x AS double precision)"},
		{"x::DATE + 1", "(CAST(x AS date) + 1)"},
		{"-x::int", "(-CAST(x AS int))"},
		{"-5::varchar", "CAST(-5 AS varchar)"},
		{"'2024-01-02'::timestamp with time zone::date", "CAST(CAST('2024-01-02' AS timestamp with time zone) AS date)"},
		{"(a + b)::decimal(10, 2) * 2", "(CAST((a + b) AS decimal(10,2)) * 2)"},
		{"CAST(x AS DECIMAL(10, 2))", "CAST(x AS decimal(10,2))"},
		{"CAST(x AS timestamp with time zone)", "CAST(x AS timestamp with time zone)"},
		{"TIMESTAMP '2024-01-02T03:04:05.25+02:00'", "TIMESTAMP '2024-01-02 01:04:05.25'"}, // the offset converts to UTC (DuckDB drops it)
		{"timestamp", "timestamp"},
		{"coalesce(a, b, 0)", "coalesce(a, b, 0)"},
		{"COUNT(*)", "count(*)"},
		{"f()", "f()"},
		{"1.5e3", "1500.0"},
		{".5", "0.5"},
		{"1E-3", "0.001"},
		{"TRUE and false or null", "((TRUE AND FALSE) OR NULL)"},
		{"  qty\t>\n100  ", "(qty > 100)"},
		{"größe > 1", "(größe > 1)"},
	}
	for _, tt := range tests {
		if tt.want == "" {
			continue
		}
		e, err := Parse(tt.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		if got := e.String(); got != tt.want {
			t.Errorf("Parse(%q) = %s, want %s", tt.src, got, tt.want)
		}
		// The printed form parses back to the same tree.
		e2, err := Parse(e.String())
		if err != nil {
			t.Errorf("Parse(%q) (reprinted from %q): %v", e.String(), tt.src, err)
		} else if e2.String() != e.String() {
			t.Errorf("reparse of %q: %s", e.String(), e2.String())
		}
	}
}

func TestParseSpans(t *testing.T) {
	src := "qty > 100 AND lower(symbol) IN ('a', 'b')"
	e, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	Walk(e, func(x Expr) bool {
		s, end := x.Span()
		got = append(got, src[s:end])
		return true
	})
	want := []string{
		src, "qty > 100", "qty", "100",
		"lower(symbol) IN ('a', 'b')", "lower(symbol)", "symbol", "'a'", "'b'",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("spans:\n got %q\nwant %q", got, want)
	}
	// Walk stops descending when fn returns false.
	n := 0
	Walk(e, func(x Expr) bool { n++; _, isIn := x.(*In); return !isIn })
	if n != 5 {
		t.Errorf("Walk visited %d nodes with pruning, want 5", n)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src    string
		offset int
		msg    string
	}{
		{"", 0, "expected an expression, found end of expression"},
		{"a +", 3, "expected an expression, found end of expression"},
		{"a AND", 5, "expected an expression, found end of expression"},
		{"AND", 0, `expected an expression, found "AND"`},
		{"x = = 1", 4, `expected an expression, found "="`},
		{"(a + b", 6, "expected ) to close the ( at offset 0, found end of expression"},
		{"a b", 2, `unexpected "b" after the end of the expression`},
		{"a NOT b", 2, `unexpected "NOT" after the end of the expression`},
		{"s LIKE 'a' | TRUE", 11, "unexpected character '|'"},
		{"s ||", 4, "expected an expression, found end of expression"},
		{"'abc", 0, "unterminated string literal"},
		{`x = "abc`, 4, "unterminated quoted identifier"},
		{"a IN ()", 6, "IN list is empty"},
		{"a IN 1", 5, "expected ( after IN, found number 1"},
		{"a IN (1, 2", 10, "expected ) to close the IN list, found end of expression"},
		{"a BETWEEN 1 OR 2", 12, `expected AND in BETWEEN, found "OR"`},
		{"a IS 1", 5, "expected NULL after IS, found number 1"},
		{"a IS NOT 1", 9, "expected NULL after IS NOT, found number 1"},
		{"CASE END", 5, `expected WHEN in CASE, found "END"`},
		{"CASE WHEN a 1 END", 12, "expected THEN after WHEN, found number 1"},
		{"CASE WHEN a THEN 1", 18, "expected END to close the CASE at offset 0, found end of expression"},
		{"CAST(a, int)", 6, `expected AS in CAST, found ","`},
		{"CAST a AS int", 5, `expected ( after CAST, found "a"`},
		{"CAST(a AS 1)", 10, "expected a type name, found number 1"},
		{"CAST(a AS int", 13, "expected ) to close the CAST, found end of expression"},
		{"f(a,)", 4, `expected an expression, found ")"`},
		{"f(a b)", 4, `expected ) to close the arguments of f, found "b"`},
		{"99999999999999999999", 0, "integer 99999999999999999999 is out of range for int64"},
		{"-9223372036854775809", 1, "integer -9223372036854775809 is out of range for int64"},
		{"1e999", 0, "number 1e999 is out of range for float64"},
		{"12abc", 0, "malformed number '12abc'"},
		{"1e", 0, "malformed number '1e'"},
		{"1e+x", 0, "malformed number '1e+'"},
		{"a # b", 2, "unexpected character '#'"},
		{"a = \xff", 4, "invalid UTF-8 byte in expression"},
		{"'\xff'", 0, "invalid UTF-8 in quoted text"},
		{"INTERVAL '3 dayz'", 9, `invalid interval '3 dayz': unknown interval unit "dayz", did you mean "days"?`},
		{"INTERVAL 3 fortnight", 11, `expected an interval unit (year, month, day, hour, minute, second...) after INTERVAL 3, found "fortnight"`},
		{"INTERVAL 'x' DAY", 9, `INTERVAL 'x' DAY: 'x' is not a number`},
		{"EXTRACT(year ts)", 13, `expected FROM in EXTRACT, found "ts"`},
		{"CAST(x AS decimal(10, y))", 22, `expected an integer type parameter, found "y"`},
		{"x::", 3, `expected a type name, found end of expression`},
		{"x:y", 1, `unexpected character ':'`},
		{"DATE '2024-02-30'", 5, "invalid date '2024-02-30': date field value out of range (want 'YYYY-MM-DD[ HH:MM:SS[.fraction]][Z|±HH[:MM]]')"},
		{"TIMESTAMP '2024-13-01'", 10, "invalid timestamp '2024-13-01': date field value out of range (want 'YYYY-MM-DD[ HH:MM:SS[.fraction]][Z|±HH[:MM]]')"},
		{strings.Repeat("(", 1200) + "1" + strings.Repeat(")", 1200), 1000, "expression is nested too deeply (more than 1000 levels)"},
		{"1" + strings.Repeat(" + 1", 1200), 3998, "expression is nested too deeply (more than 1000 levels)"},
		{strings.Repeat("NOT ", 1200) + "x", 3996, "expression is nested too deeply (more than 1000 levels)"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.src)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%.40q): got %v, want a *SyntaxError", tt.src, err)
			continue
		}
		if se.Offset != tt.offset || se.Msg != tt.msg {
			t.Errorf("Parse(%.40q):\n got @%d %s\nwant @%d %s", tt.src, se.Offset, se.Msg, tt.offset, tt.msg)
		}
		if !strings.HasPrefix(err.Error(), "expr: syntax error at offset ") {
			t.Errorf("Parse(%.40q): Error() = %q", tt.src, err.Error())
		}
	}
}

// A long IN list or a long chain of operators within the depth limit parses.
func TestParseWide(t *testing.T) {
	list := "x IN (" + strings.Repeat("1, ", 5000) + "1)"
	if _, err := Parse(list); err != nil {
		t.Errorf("5001-element IN list: %v", err)
	}
	chain := "1" + strings.Repeat(" + 1", 900)
	if _, err := Parse(chain); err != nil {
		t.Errorf("900-term sum: %v", err)
	}
}
