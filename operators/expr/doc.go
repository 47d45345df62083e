// Package expr is zflow's expression language: the predicate of the filter
// operator's where: and the computed columns of project. It is a small
// subset of SQL scalar expressions (ISO/IEC 9075 semantics, with NULLs and
// three-valued logic), evaluated a whole Arrow record batch at a time.
//
// # Model
//
// An expression goes through three stages:
//
//	Parse(src)            → Expr      syntax tree; *SyntaxError with a byte offset
//	Compile(src, schema)  → *Compiled type-checked, constants folded; *TypeError with a byte offset
//	(*Compiled).Eval(ctx, mem, batch) → arrow.Array, one value per row
//
// A *Compiled is immutable and safe for concurrent use, so one compiled
// predicate serves every instance of a parallel operator. Eval borrows the
// batch and returns a new array the caller owns (Release it); every byte it
// allocates comes from the allocator passed in. A bare column reference
// returns the column itself, Retained: no copy. Select is the filter helper:
// it returns the batch itself when every row passes, nil when none does, and
// otherwise a filtered copy together with its size for the copy ledger.
//
// Errors carry a byte offset into the source. Parse stops at the first
// syntax error; Compile reports every type error of the expression (an
// ErrorList when there are several, in source order), and none about a
// sub-expression that already failed: `a + 'x' > nope AND lower(5)` gives
// three errors, not a fourth about comparing the failed sum. FieldErrors
// turns them into the engine's *engine.FieldError, one each, so the
// pipeline compiler shows each at its own file:line:col (FieldError keeps
// only the first):
//
//	c, err := expr.Compile(cfg.Where, schema)
//	if err != nil {
//		return expr.FieldErrors("where", err)
//	}
//
// Evaluation is vectorised: each operator runs once over whole arrays.
// This package's own loops run over the arrays' raw buffers and validity
// bitmaps, with no per-row allocation and constants broadcast rather than
// materialised, for: +, - and * on int64 (checked for overflow) and
// float64; the comparisons on int64, int32, float64, timestamps and dates;
// AND/OR; the casts of an integer to int64 or float64; division, modulo,
// LIKE, CASE, coalesce, NOT, IS NULL, lower, upper, length, ||, every
// function below but coalesce and abs; CAST to and from every type it
// names (cast.go, tostring.go; decimals convert row by row through arrow's
// decimal128.Num, which allocates to parse a string); the date and time
// functions (func_time.go, strtime.go, func_datediff.go, func_epoch.go)
// and date and interval arithmetic (interval.go); IN with up to 256
// constant strings (a hash set built at Compile time, see in.go); and
// Select's filter, which gathers the kept rows of every primitive,
// boolean, string and binary column (see select.go). The rest (unary minus, abs, other widenings of
// an operand to its canonical type, other comparisons, IN over other
// constants or a longer list, the filter of nested or dictionary columns)
// runs arrow-go's compute kernels, each call of which starts a goroutine.
// (Some of the package's loops replace arrow-go v18.8.0 kernels that are
// wrong on sliced input or leak: see logic.go and tostring.go; and arrow's
// checked add and subtract miss some overflows next to MinInt64, which
// these loops do not: see fastcall.go.) Constant subtrees are evaluated
// once, at Compile time.
//
// # Language
//
// The language follows DuckDB (the reference dialect; the expressions of
// testdata/duckdb/*.sql are checked against it) for types, casts, dates,
// times and intervals.
//
//	literals     42  -7  1.5  2e-3  'it''s'  TRUE  FALSE  NULL
//	             DATE '2024-01-02'  (a date32)
//	             TIMESTAMP '2024-01-02 03:04:05[.123456]'  TIMESTAMP '2024-01-02'
//	             TIMESTAMPTZ '2024-01-02 03:04:05+02:00'  (converted to UTC)
//	             INTERVAL 2 DAY  INTERVAL '90 minutes'  INTERVAL '1 year 2 months'
//	             INTERVAL '01:30:00'  INTERVAL (3) HOUR
//	columns      qty   "my col"   ("" escapes a double quote)
//	arithmetic   -x  x + y  x - y  x * y  x / y  x % y
//	             date ± integer (days)  date - date (BIGINT days)
//	             date|timestamp ± INTERVAL ...  INTERVAL ... + date|timestamp
//	             INTERVAL ... ± INTERVAL ...  INTERVAL ... * n  (constants, folded)
//	strings      x || y   (concatenation; numbers, booleans, timestamps are
//	             formatted as CAST(x AS string))
//	comparison   =  ==  !=  <>  <  <=  >  >=
//	logic        NOT x   x AND y   x OR y
//	predicates   x [NOT] IN (a, b, ...)   x [NOT] BETWEEN a AND b
//	             x IS [NOT] NULL   x [NOT] LIKE 'pat%' [ESCAPE '\']
//	conditional  CASE WHEN c THEN v [WHEN ...] [ELSE v] END
//	             CASE x WHEN a THEN v [WHEN ...] [ELSE v] END
//	conversion   CAST(x AS type), or x::type (binding tighter than any
//	             operator), type one of (case-insensitive):
//	               TINYINT INT1 → int8; SMALLINT INT2 SHORT INT16 → int16;
//	               INTEGER INT INT4 SIGNED INT32 → int32;
//	               BIGINT INT8 LONG INT64 → int64;
//	               UTINYINT UINT8, USMALLINT UINT16, UINTEGER UINT32,
//	               UBIGINT UINT64 → uint8…uint64;
//	               REAL FLOAT FLOAT4 FLOAT32 → float32;
//	               DOUBLE, DOUBLE PRECISION, FLOAT8, FLOAT64 → float64;
//	               VARCHAR[(n)] TEXT STRING CHAR BPCHAR → utf8;
//	               BOOLEAN BOOL LOGICAL → bool; DATE → date32;
//	               TIMESTAMP DATETIME TIMESTAMP_US → timestamp[us];
//	               TIMESTAMP_S, TIMESTAMP_MS, TIMESTAMP_NS;
//	               TIMESTAMPTZ, TIMESTAMP WITH TIME ZONE → timestamp[us, UTC];
//	               DECIMAL(p[, s]) NUMERIC(p[, s]) → decimal128(p, s), p ≤ 38
//	               (bare DECIMAL is DECIMAL(18, 3))
//	             (INT is 32 bits and FLOAT 32 bits, as in DuckDB)
//	functions    coalesce(a, b, ...)  abs(x)  lower(s)  upper(s)  length(s)
//	             substr(s, start[, length])  substring(...)  replace(s, from, to)
//	             trim(s[, chars])  ltrim(...)  rtrim(...)  concat(a, ...)
//	             split_part(s, sep, n)  starts_with(s, prefix)  contains(s, x)
//	             regexp_matches(s, pattern[, options])
//	             regexp_replace(s, pattern, replacement[, options])
//	             round(x[, digits])  floor(x)  ceil(x)  ceiling(x)  sqrt(x)  ln(x)
//	             pow(x, y)  power(x, y)  greatest(a, ...)  least(a, ...)
//	             nullif(a, b)  hash(x, ...)
//	             date_part(part, x)  extract(part FROM x)  date_trunc(part, x)
//	             date_diff(part, start, end)  datediff(...)  make_date(y, m, d)
//	             strftime(x, format)  strptime(s, format)  epoch_ms(x)
//	             epoch(x)  epoch_us(x)  epoch_ns(x)  to_timestamp(seconds)
//
// Precedence, loosest first: OR; AND; NOT; comparisons, IN, BETWEEN, LIKE,
// IS (left-associative); || (as in DuckDB: 'a' || 1 + 2 is 'a3'); + and
// -; *, / and %; unary minus. Keywords and function names are
// case-insensitive and reserved (quote a column named "end"). TIMESTAMP,
// TIMESTAMPTZ, DATE and INTERVAL are keywords only before a literal and
// EXTRACT only before "(", so a column may be called timestamp or date. A
// bare column name matches exactly, or else case-insensitively if only one
// column matches; a quoted name matches exactly.
//
// Dates and timestamps are written YYYY-MM-DD, then optionally ' ' or 'T'
// and HH:MM[:SS[.fraction]], then optionally a zone: Z, UTC, ±HH, ±HH:MM or
// ±HHMM. A zone offset converts the time to UTC, for a TIMESTAMP (literal
// or cast) as for a TIMESTAMPTZ: '2024-01-05 10:00:00+02:00' is 08:00 UTC
// (DuckDB keeps 10:00 for a TIMESTAMP and drops the offset, which moves
// the instant without a word); a DATE ignores the time. An interval's text is number-and-unit pairs (year,
// quarter, month, week, day, hour, minute, second, millisecond,
// microsecond, their plurals and DuckDB's abbreviations: y, mon, d, h,
// min, m, s, ms, us...), fractions allowed ('1.5 hours'), and/or a clock
// [-]HH:MM[:SS[.f]], and an optional trailing "ago".
//
// Functions on dates and times (x a date or a timestamp of any unit):
//
//   - date_part(part, x) and extract(part FROM x) give a BIGINT: year,
//     quarter, month, day, decade, century, millennium, era, week (ISO),
//     isoyear, yearweek, dow or dayofweek or weekday (Sunday 0), isodow
//     (Monday 1), doy or dayofyear, hour, minute, second, millisecond and
//     microsecond (each including the seconds: 5.5 s is 5500 ms); epoch
//     (seconds) and julian (day) give a DOUBLE.
//   - date_trunc(part, x) gives a TIMESTAMP (a TIMESTAMPTZ for one):
//     millennium, century, decade, year, isoyear, quarter, month, week
//     (Monday), day, hour, minute, second, millisecond, microsecond.
//   - strftime(x, format) (also strftime(format, x)) and strptime(s,
//     format) take DuckDB's specifiers: %Y %y %m %d %H %I %p %M %S %f
//     (microseconds) %g (milliseconds) %n (nanoseconds) %j %b %B %a %A %w
//     %u %U %W %V %G %z %Z %c %x %X %%, with %-d (no padding). strptime
//     gives a TIMESTAMP, a TIMESTAMPTZ when the format has %z and a
//     TIMESTAMP_NS when it has %n; a string that does not match is a
//     run-time error naming the string and the format.
//   - date_diff(part, start, end) (datediff is the same) gives a BIGINT:
//     how many part boundaries lie between start and end, negative when
//     end is earlier (date_diff('hour', '00:59', '01:00') is 1); week
//     counts whole 7-day spans, century and millennium year/100 and
//     year/1000 boundaries, as DuckDB does.
//   - make_date(year, month, day) gives a DATE; a day that does not exist
//     (2023-02-29) is a run-time error.
//   - epoch_ms(x) gives the BIGINT milliseconds of a date or timestamp
//     (toward zero); epoch_ms(n) the TIMESTAMP of n milliseconds. epoch(x)
//     gives DOUBLE seconds, epoch_us(x) and epoch_ns(x) BIGINT micro- and
//     nanoseconds (an error outside the nanosecond range, 1677-2262);
//     to_timestamp(seconds) the TIMESTAMPTZ of a number of seconds.
//   - CAST of an interval constant to VARCHAR gives DuckDB's text of it
//     ('1 year 2 months 3 days 01:30:00').
//
// part and format must be constant strings, checked at Compile time: an
// unknown part ('yaer': did you mean 'year'?) or specifier is a
// *TypeError at the argument's offset. The functions compute in
// microseconds, DuckDB's TIMESTAMP precision: a timestamp[ns] is truncated
// to microseconds first, toward zero.
//
// # Types and NULL
//
// Columns of type int8…int64 and uint8…uint64 compute as int64; float32 and
// float64 as float64; utf8, large_utf8 and dictionaries of them as utf8;
// bool; timestamps of any unit and zone; and date32 and date64 (as
// date32). A CAST keeps its narrow type (CAST(x AS SMALLINT) is an int16
// column) and arithmetic on it computes in the canonical type. Decimals
// may be cast to and from numbers, strings and other decimals and
// returned; an operator or comparison on one is a *TypeError saying to
// CAST it AS DOUBLE. An interval is a constant only: it may be added to or
// subtracted from a date or timestamp, added to another or multiplied by a
// constant number (a fraction of a month becomes days, 30 to a month, and
// a fraction of a day microseconds, as in DuckDB), and is refused as a
// result.
// Other column types may only be returned as they are or tested with IS
// NULL. An int meeting a float becomes float64. Comparing a narrow column
// (int32, timestamp[s], date32) with a constant that converts exactly
// compares in the column's own type, so the column is not cast.
// Timestamps compare in the finer unit; a zone-less literal takes the
// column's zone; a zone-less column cannot meet a zone-aware one. A date
// meeting a timestamp compares (and unifies, in CASE, coalesce and IN) as
// a timestamp, its midnight. A string constant meeting a date or timestamp
// converts to its type at Compile time (d = '2024-06-02'); one that does
// not parse is a *TypeError at its offset. Strings compare bytewise.
// Booleans support only = and !=.
//
//   - Integer division truncates toward zero (7 / 2 = 3, -7 / 2 = -3) and
//     % takes the dividend's sign (-7 % 2 = -1), as in Go and SQL.
//     Division or modulo by zero (integer or float) yields NULL, not an
//     error. Integer overflow in +, -, *, /, unary minus and abs is a
//     run-time error (the one overflowing division is MinInt64 / -1;
//     MinInt64 % -1 is 0), as is a date or timestamp moved out of its
//     range.
//   - Any operator or function with a NULL operand yields NULL, except:
//     AND/OR follow Kleene logic (FALSE AND NULL = FALSE, TRUE OR NULL =
//     TRUE); IS [NOT] NULL; coalesce, concat, greatest, least and hash (see
//     below); nullif(a, NULL), which is a; CASE (a NULL condition counts as
//     not true). x IN (...) is NULL when x is NULL, or when nothing matched and
//     the list holds a NULL; NOT IN is its negation.
//   - LIKE is case-sensitive; % matches any run of characters, _ exactly one
//     (a UTF-8 code point). The pattern must be a constant; there is no
//     default escape character.
//   - CAST follows DuckDB. A value out of the target's range is a run-time
//     error, the whole batch failing ("value 300 is out of range for
//     TINYINT"; ±Inf and NaN fit no integer; a constant one fails Compile).
//     An integer to a float rounds to the nearest float above 2^53. A
//     DOUBLE or FLOAT value to an integer rounds half to even, as DuckDB
//     does (CAST(price AS INT) with price 2.5 is 2). A literal written with
//     a decimal point and no exponent is an exact decimal, as in SQL:
//     CAST(2.5 AS INT) is 3 and CAST(-2.5 AS INT) is -3 (half away from
//     zero; 25e-1 is a DOUBLE and gives 2), and a FLOAT column compares
//     with such a literal rounded to FLOAT (f32 = 0.1 holds for the FLOAT
//     nearest 0.1), as DuckDB casts the literal to the column's type. A
//     string to a number ignores surrounding spaces and takes a sign, '_'
//     separators, 0x hex and, for an integer, a decimal or exponent form
//     rounded half away from zero ('2.5' is 3);
//     to a boolean it takes true/t/yes/y/1 and false/f/no/n/0 in any case;
//     to a date or timestamp the forms above, digits past the unit dropped.
//     A string that does not parse is a run-time error naming it. A
//     timestamp to a date floors to its day; to a coarser unit it rounds
//     to the nearest tick (nanoseconds truncate to microseconds); a date to
//     a timestamp is its midnight. Numbers and booleans convert both ways
//     (nonzero is true). A decimal rounds half away from zero and fails
//     when the value needs more than p digits. Dates and timestamps do not
//     cast to or from numbers.
//   - CAST to a string writes DuckDB's text: floats with the fewest digits
//     that read back, fixed (1.0, 0.0001, 1000000000000000.0) for decimal
//     exponents -4 to 15 and 1e+16, 1e-05 outside, inf, -inf, nan; dates
//     YYYY-MM-DD; timestamps YYYY-MM-DD HH:MM:SS[.fraction] with trailing
//     zeros dropped, "+00" after a TIMESTAMPTZ; years before 1 as "0044-03-15
//     (BC)"; decimals with their scale's digits.
//   - Adding months keeps the day of the month, clamped to the month's
//     last day (DATE '2024-01-31' + INTERVAL 1 MONTH is 2024-02-29); a date
//     plus an interval is a TIMESTAMP, and a timestamp plus an interval a
//     TIMESTAMP (microseconds) whatever its unit, as in DuckDB.
//   - lower and upper map Unicode letters; length counts code points.
//   - CASE evaluates every branch over the whole batch and then picks per
//     row, so an error in a branch no row takes (integer overflow) still
//     fails the batch; division by zero does not, as it yields NULL.
//
// The string and number functions follow DuckDB's names, semantics and
// result types (func_string.go, func_regexp.go, func_math.go,
// func_pick.go); positions and lengths count code points:
//
//   - substr(s, start[, length]) (substring is the same): start counts from
//     1, from the end when negative, and 0 is one before the first
//     character; a negative length takes the characters before start; what
//     falls outside s is dropped (substr('hello', -7, 3) is 'h'). A start
//     or length outside ±2^32 is an error.
//   - replace(s, from, to) replaces every occurrence, left to right; an
//     empty from changes nothing.
//   - trim, ltrim and rtrim remove blanks (' ' only), or every character of
//     chars, from both ends, the left or the right.
//   - concat(a, ...) skips NULL arguments (concat(NULL) is the empty
//     string); a || b is NULL when either is. Both format non-strings as
//     CAST to string does.
//   - split_part(s, sep, n) is part n of s split at sep, from the end when n
//     is negative; empty when there is no part n or n is 0; an empty sep
//     splits s into its characters.
//   - starts_with(s, prefix) and contains(s, x) are true for an empty prefix
//     or x.
//   - regexp_matches(s, pattern[, options]) is true when pattern matches
//     somewhere in s; regexp_replace(s, pattern, replacement[, options])
//     replaces the first match, or every match with option g, \0 in the
//     replacement standing for the match and \1…\9 for its groups (a
//     replacement with another backslash escape, or a group the pattern
//     lacks, leaves s as it is, as in DuckDB). Patterns are RE2 syntax (Go's
//     regexp); pattern, replacement and options must be constants, compiled
//     at Compile time. Options: c case-sensitive (default), i insensitive,
//     l literal pattern, s '.' matches a newline, m n p it does not
//     (default), g every match (regexp_replace only).
//   - round(x[, digits]) rounds half away from zero; an integer stays an
//     integer (int64), where a negative digits rounds to tens, hundreds...,
//     and overflow is an error (DuckDB wraps around); a float stays float64,
//     scaled by 10^digits as DuckDB does (round(0.285, 2) is 0.28).
//   - floor, ceil and ceiling return float64, for integers too (DuckDB's
//     DOUBLE). sqrt of a negative number and ln of zero or of a negative
//     number are errors; pow (power) follows IEEE 754: pow(10, 400) is
//     +Inf, pow(-8, 1/3.0) NaN.
//   - greatest(a, ...) and least(a, ...) bring their arguments to one type
//     (as coalesce) and skip NULLs: the result is NULL only when every
//     argument is. NaN is greater than every other float, as in DuckDB;
//     strings compare bytewise.
//   - nullif(a, b) is NULL where a = b (compared as = compares them), else
//     a, in a's type.
//   - hash(x, ...) is a uint64 (DuckDB's UBIGINT), never NULL: the xxhash64 of
//     the value's canonical bytes — an integer of any width as its int64
//     (8 bytes, little-endian), a float as its float64 bits with -0 as 0
//     and one NaN, a string's bytes, a boolean as the integer 0 or 1, a
//     timestamp as its stored integer in its own unit — so it is the same
//     in every process, run and batch size. NULL hashes to
//     13787848793156543929, DuckDB's value; other values differ from
//     DuckDB's hash. Several arguments (a row key) fold left to right,
//     h = xxhash64(h ‖ hash(next)) over 8 little-endian bytes each. Hashes
//     stay uint64 where they meet each other (=, IN, CASE, coalesce,
//     greatest, least, nullif), so hash(a) = hash(b) works; arithmetic
//     converts them to int64 and fails above 2^63-1.
//   - Every other argument that is NULL makes the result NULL.
//
// Select treats a NULL predicate as false, as SQL's WHERE does.
//
// # Checked against DuckDB
//
// TestDuckDB (duckdb_test.go) is a differential test with DuckDB as the
// oracle: each expression of testdata/duckdb/*.sql, one a line, runs in
// zflow and in DuckDB (through internal/duckdbtest, all in one session)
// over the same seeded table of ~2000 rows with NULLs and edge values, and
// every value must agree: NULLs in the same rows, integers, strings and
// booleans exactly, floats within 1e-9 (float32 1e-6), timestamps by
// instant; a top-level CAST's type too; when DuckDB fails, zflow must fail;
// a boolean expression's Select keeps the rows DuckDB's WHERE keeps. Seeded
// random expressions, written in the subset both dialects read alike, are
// checked the same way.
// To add an expression, add a line to the file of its area (core.sql for
// the operators above); testdata/duckdb/README.md describes the format, the
// table's columns, how to write an expression both dialects read alike,
// and the short list of known differences.
package expr
