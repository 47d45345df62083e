package expr

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

var fuzzSeeds = []string{
	"qty > 100 AND symbol IN ('AAPL', 'MSFT')",
	"price * qty",
	"sum(price * qty) / sum(qty)",
	"count(*)",
	"NOT flag OR qty IS NULL",
	"x NOT BETWEEN -1 AND 2.5e3",
	"name NOT LIKE 'a!%b_' ESCAPE '!'",
	"CASE WHEN qty > 10 THEN 'big' WHEN qty > 1 THEN 'mid' ELSE NULL END",
	"CASE symbol WHEN 'A' THEN 1 END",
	"CAST(price AS int) % 7",
	"coalesce(a, b, 0) <> abs(-c)",
	`"my col" = 'it''s'`,
	"ts >= TIMESTAMP '2024-01-02 03:04:05.123456789'",
	"DATE '2024-02-29' < timestamp",
	"lower(upper(name)) == length(name)",
	"-9223372036854775808 - 1",
	"((((a))))",
	"a IN (1, NULL, b + 1)",
	"1 / 0 IS NULL",
	"'unterminated",
	"\"quoted ident",
	"f(*) + g()",
	"qty >= .5 AND qty <= 1E+2",
	"größe <> 'é日本'",
	"a = = b",
	"CASE END",
	"x IS NOT NULL IS NULL",
	"NOT NOT NOT TRUE",
	"CAST(qty AS DECIMAL(10, 2))",
	"CAST(s AS TIMESTAMP WITH TIME ZONE) > TIMESTAMPTZ '2024-01-02T03:04:05+02:00'",
	"CAST(x AS double precision) + CAST(y AS utinyint)",
	"ts + INTERVAL '1 year 2 months 3 days 04:05:06.5 ago' - INTERVAL (2) DAY",
	"DATE '-0044-03-15' + 1 < d - INTERVAL 3 MONTHS",
	"extract(dow FROM ts) = date_part('isodow', DATE '2024-06-02')",
	"date_trunc('quarter', ts) <> strptime('02/06/24 1pm', '%d/%m/%y %I%p')",
	"strftime(ts, '%A %-d %B %Y, %H:%M:%S.%f %z')",
	"epoch_ms(ts) - epoch_ms(1704067200000)",
	"-qty::smallint::varchar || symbol::date::timestamp with time zone",
	"substr(name, -3, qty) || symbol || 1 + 2",
	"concat(symbol, NULL, qty, flag) = trim(name, 'ab')",
	"split_part(name, '', small) <> replace(symbol, 'A', '')",
	"regexp_replace(name, '(.)(a*)', '\\2\\1', 'gi') LIKE 'a%'",
	"regexp_matches(symbol, '[', 'x')",
	"round(price, small) + floor(qty) + sqrt(abs(price)) + ln(qty) + pow(2, small)",
	"greatest(qty, price, NULL) = least(small, 1) OR nullif(symbol, 'AAPL') IS NULL",
	"hash(name) = hash(lower(name)) AND starts_with(symbol, 'A') AND contains(name, 'a')",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q): %T %v, want *SyntaxError", src, err, err)
			}
			if se.Offset < 0 || se.Offset > len(src) {
				t.Fatalf("Parse(%q): offset %d outside the source", src, se.Offset)
			}
			return
		}
		start, end := e.Span()
		if start < 0 || end > len(src) || start > end {
			t.Fatalf("Parse(%q): span [%d,%d)", src, start, end)
		}
		// The printed form parses back to the same tree.
		printed := e.String()
		e2, err := Parse(printed)
		if err != nil {
			t.Fatalf("Parse(%q) printed %q, which does not parse: %v", src, printed, err)
		}
		if again := e2.String(); again != printed {
			t.Fatalf("Parse(%q): printed %q, reprinted %q", src, printed, again)
		}
	})
}

// FuzzCompile compiles against the test schema and evaluates what compiles
// on the test batch: no panic, no leak, every error with an offset inside
// the source, in source order.
func FuzzCompile(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, tt := range evalTests {
		f.Add(tt.src)
	}
	mem := newMem()
	defer mem.AssertSize(f, 0)
	rec := testBatch(f, mem)
	defer rec.Release()
	f.Fuzz(func(t *testing.T, src string) {
		c, err := Compile(src, testSchema)
		if err != nil {
			prev := 0
			for _, e := range Errors(err) {
				off, _, ok := Position(e)
				if !ok {
					t.Fatalf("Compile(%q): %v has no position", src, e)
				}
				if off < 0 || off > len(src) {
					t.Fatalf("Compile(%q): offset %d outside the source", src, off)
				}
				if off < prev {
					t.Fatalf("Compile(%q): errors out of source order: %v", src, err)
				}
				prev = off
			}
			return
		}
		emem := newMem()
		arr, err := c.Eval(context.Background(), emem, rec)
		if err == nil {
			if arr.Len() != int(rec.NumRows()) {
				t.Fatalf("Eval(%q): %d rows", src, arr.Len())
			}
			arr.Release()
		}
		if c.Type().ID() == arrow.BOOL {
			out, _, err := c.Select(context.Background(), emem, rec)
			if err == nil && out != nil {
				out.Release()
			}
		}
		emem.AssertSize(t, 0)
	})
}
