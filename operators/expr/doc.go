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
// LIKE, CASE, coalesce, NOT, IS NULL, lower, upper, length and casts to
// string; IN with up to 256 constant strings (a hash set built at Compile
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
//	comparison   =  ==  !=  <>  <  <=  >  >=
//	logic        NOT x   x AND y   x OR y
//	predicates   x [NOT] IN (a, b, ...)   x [NOT] BETWEEN a AND b
//	             x IS [NOT] NULL   x [NOT] LIKE 'pat%' [ESCAPE '\']
//	conditional  CASE WHEN c THEN v [WHEN ...] [ELSE v] END
//	             CASE x WHEN a THEN v [WHEN ...] [ELSE v] END
//	conversion   CAST(x AS type)   type: int, int64, bigint, int32, float, double,
//	             float64, string, varchar, text, bool, boolean, timestamp
//	functions    coalesce(a, b, ...)  abs(x)  lower(s)  upper(s)  length(s)
//
// Precedence, loosest first: OR; AND; NOT; comparisons, IN, BETWEEN, LIKE,
// IS (left-associative); + and -; *, / and %; unary minus. Keywords and
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
//     error. Integer overflow in +, -, *, unary minus and abs is a run-time
//     error.
//   - Any operator or function with a NULL operand yields NULL, except:
//     AND/OR follow Kleene logic (FALSE AND NULL = FALSE, TRUE OR NULL =
//     TRUE); IS [NOT] NULL; coalesce; CASE (a NULL condition counts as not
//     true). x IN (...) is NULL when x is NULL, or when nothing matched and
//     the list holds a NULL; NOT IN is its negation.
//   - LIKE is case-sensitive; % matches any run of characters, _ exactly one
//     (a UTF-8 code point). The pattern must be a constant; there is no
//     default escape character.
//   - CAST from float to int rounds half away from zero, as SQL does
//     (CAST(2.5 AS int) is 3, CAST(-2.5 AS int) is -3); a string that does not
//     parse, or an integer that does not fit, is a run-time error (the
//     whole batch fails). CAST(x AS timestamp) gives timestamp[us].
//   - lower and upper map Unicode letters; length counts code points.
//   - CASE evaluates every branch over the whole batch and then picks per
//     row, so an error in a branch no row takes (integer overflow) still
//     fails the batch; division by zero does not, as it yields NULL.
//
// Select treats a NULL predicate as false, as SQL's WHERE does.
package expr
