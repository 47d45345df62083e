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
// LIKE, CASE, coalesce, NOT, IS NULL, lower, upper, length, casts to
// string, || and every function below but coalesce and abs; IN with up to 256 constant strings (a hash set built at Compile
// time, see in.go); and Select's filter, which gathers the kept rows of
// every primitive, boolean, string and binary column (see select.go).
// The rest (unary minus, abs, other casts and comparisons, IN over other
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
//	literals     42  -7  1.5  2e-3  'it''s'  TRUE  FALSE  NULL
//	             TIMESTAMP '2024-01-02 03:04:05[.123456]'  TIMESTAMP '2024-01-02'
//	             (DATE '2024-01-02' is the same timestamp; a literal without a
//	             zone offset is UTC)
//	columns      qty   "my col"   ("" escapes a double quote)
//	arithmetic   -x  x + y  x - y  x * y  x / y  x % y
//	strings      x || y   (concatenation; numbers, booleans, timestamps are
//	             formatted as CAST(x AS string))
//	comparison   =  ==  !=  <>  <  <=  >  >=
//	logic        NOT x   x AND y   x OR y
//	predicates   x [NOT] IN (a, b, ...)   x [NOT] BETWEEN a AND b
//	             x IS [NOT] NULL   x [NOT] LIKE 'pat%' [ESCAPE '\']
//	conditional  CASE WHEN c THEN v [WHEN ...] [ELSE v] END
//	             CASE x WHEN a THEN v [WHEN ...] [ELSE v] END
//	conversion   CAST(x AS type)   type: int, int64, bigint, int32, float, double,
//	             float64, string, varchar, text, bool, boolean, timestamp
//	functions    coalesce(a, b, ...)  abs(x)  lower(s)  upper(s)  length(s)
//	             substr(s, start[, length])  substring(...)  replace(s, from, to)
//	             trim(s[, chars])  ltrim(...)  rtrim(...)  concat(a, ...)
//	             split_part(s, sep, n)  starts_with(s, prefix)  contains(s, x)
//	             regexp_matches(s, pattern[, options])
//	             regexp_replace(s, pattern, replacement[, options])
//	             round(x[, digits])  floor(x)  ceil(x)  ceiling(x)  sqrt(x)  ln(x)
//	             pow(x, y)  power(x, y)  greatest(a, ...)  least(a, ...)
//	             nullif(a, b)  hash(x, ...)
//
// Precedence, loosest first: OR; AND; NOT; comparisons, IN, BETWEEN, LIKE,
// IS (left-associative); || (as in DuckDB: 'a' || 1 + 2 is 'a3'); + and -; *, / and %; unary minus. Keywords and
// function names are case-insensitive and reserved (quote a column named
// "end"). TIMESTAMP and DATE are keywords only before a string, so a
// column may be called timestamp. A bare column name matches exactly, or
// else case-insensitively if only one column matches; a quoted name
// matches exactly.
//
// # Types and NULL
//
// Columns of type int8…int64 and uint8…uint64 compute as int64; float32 and
// float64 as float64; utf8, large_utf8 and dictionaries of them as utf8;
// bool; and timestamps of any unit and zone. Other column types may only be
// returned as they are or tested with IS NULL. An int meeting a float
// becomes float64. Comparing a narrow column (int32, timestamp[s]) with a
// constant that converts exactly compares in the column's own type, so the
// column is not cast. Timestamps compare in the finer unit; a zone-less
// literal takes the column's zone; a zone-less column cannot meet a
// zone-aware one. Strings compare bytewise. Booleans support only = and !=.
//
//   - Integer division truncates toward zero (7 / 2 = 3, -7 / 2 = -3) and
//     % takes the dividend's sign (-7 % 2 = -1), as in Go and SQL.
//     Division or modulo by zero (integer or float) yields NULL, not an
//     error. Integer overflow in +, -, *, /, unary minus and abs is a
//     run-time error (the one overflowing division is MinInt64 / -1;
//     MinInt64 % -1 is 0).
//   - Any operator or function with a NULL operand yields NULL, except:
//     AND/OR follow Kleene logic (FALSE AND NULL = FALSE, TRUE OR NULL =
//     TRUE); IS [NOT] NULL; coalesce, concat, greatest, least and hash (see
//     below); nullif(a, NULL), which is a; CASE (a NULL condition counts as
//     not true). x IN (...) is NULL when x is NULL, or when nothing matched and
//     the list holds a NULL; NOT IN is its negation.
//   - LIKE is case-sensitive; % matches any run of characters, _ exactly one
//     (a UTF-8 code point). The pattern must be a constant; there is no
//     default escape character.
//   - CAST from float to int rounds half away from zero, as SQL does
//     (CAST(2.5 AS int) is 3, CAST(-2.5 AS int) is -3); a string that does not
//     parse, or an integer or float that does not fit (±Inf and NaN never
//     do), is a run-time error (the whole batch fails). CAST from int to
//     float rounds to the nearest float above 2^53. CAST(x AS timestamp)
//     gives timestamp[us].
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
