-- math.sql: the number functions, greatest, least, nullif and hash against
-- DuckDB, over table t (columns and dialect notes in README.md). One
-- expression a line. Narrow integers are cast to bigint where DuckDB would
-- compute (and wrap around) in their own width.

-- round: half away from zero; integers stay integers. DuckDB wants its
-- digits as an INTEGER (int32); zflow takes any integer.
round(f64)
round(f64, 2)
round(f64, -2)
round(f64, CAST(k AS int32))
round(CAST(f32 AS double), 1)
round(k)
round(k, -1)
round(k * 37, -2)
round(CAST(i32 AS bigint), -3)
round(CAST(i16 AS bigint), CAST(k AS int32))
round(2.5)
round(-2.5)
round(f64, NULL)

-- floor, ceil, ceiling: DOUBLE, for integers too
floor(f64)
floor(CAST(f32 AS double))
floor(k)
ceil(f64)
ceiling(CAST(f32 AS double))
ceil(i64)
ceiling(k)

-- sqrt and ln: an error on a negative number (ln: on zero too)
sqrt(abs(f64))
sqrt(abs(k))
sqrt(CAST(u32 AS double))
ln(abs(f64) + 1)
ln(abs(k) + 1)
--! error
sqrt(f64)
--! error
ln(k)
--! error
sqrt(-1)

-- pow and power: IEEE 754 where it overflows or has no answer
pow(k, 2)
power(f64, 2)
power(k, 3)
pow(abs(f64), 0.5)
pow(f64, 0.5)
pow(2, k)
pow(CAST(f32 AS double), k)
pow(0, -1)

-- greatest and least: NULLs are skipped
greatest(k, i8, i16)
least(k, i8, i16)
greatest(k, f64)
least(CAST(f32 AS double), f64)
greatest(s, s2)
least(s, s2, 'm')
greatest(ts, ts_ms)
least(ts, ts_ms)
greatest(b, false)
least(b, true)
greatest(k, NULL)
least(NULL, f64, 0)

-- nullif: NULL where a = b, else a
nullif(k, 0)
nullif(CAST(i8 AS bigint), k)
nullif(s, '')
nullif(s2, s)
nullif(f64, 0)
nullif(b, true)
nullif(k, NULL)

-- hash: zflow's values are not DuckDB's (xxhash64 of the value's bytes, see
-- doc.go), so compare what hashes agree on: equal values hash equal, unequal
-- ones (without a collision) do not, and NULL hashes to a fixed value.
hash(s) = hash(lower(s))
hash(s) = hash(s2)
-- (Not hash(i8) = hash(k): DuckDB hashes a negative TINYINT and the same
-- BIGINT differently; zflow hashes every integer as its int64 value.)
hash(k) = hash(CAST(i8 AS bigint))
hash(b) = hash(TRUE)
hash(b) = hash(1)
hash(s) = hash(NULL)
hash(k) = hash(k + 0)
hash(f64) = hash(f64 * 1)
hash(s, k) = hash(lower(s), k)
hash(s, s2) = hash(s2, s)
hash(k, NULL) = hash(CAST(i8 AS bigint), NULL)
