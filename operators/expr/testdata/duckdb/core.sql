-- core.sql: today's expression language against DuckDB, over table t
-- (columns and dialect notes in README.md). One expression a line.

-- columns and literals
id
i8
u32
f32
s
ts_ms
d
b
NULL
42
'it''s'
TRUE
1.5
2e-3
TIMESTAMP '2024-01-02 03:04:05.123456'
TIMESTAMP '2024-01-02'
K + I32
"k" * 2

-- integer arithmetic: narrow widths meet a bigint (k is small, i64 may be extreme)
i8 + k
i16 - k
i32 * k
u32 + k
u32 - k
i64 % 1000000 + k
k - i8
CAST(i8 AS bigint) + i16 + i32 + u32
CAST(i32 AS bigint) * i32
CAST(u32 AS bigint) * i16
k * k * k
-k
-(-k)
k + k * 2
(k + 1) * 2
k - 3 - 2
2 * k % 3
-k * 2
k % 3
k % -3
-7 % k
i8 % k
i32 % k
i64 % k
u32 % k
--! error
i64 + k
--! error
i64 * k
--! error
-i64
--! error
k - i64
--! error
i64 - k
--! error
CAST(u32 AS bigint) * u32
--! error
i64 + 1

-- float arithmetic, floats meeting integers
f32 + f64
f64 - f32
f32 * f32
f64 * k
f64 + 1
f64 - 0.25
k + 0.25
i32 * 0.5
f32 / 8
f64 / 2
CAST(k AS double) / 4
CAST(i64 AS double) / 3
CAST(i8 AS double) / 7
f32 * i16
u32 * 1.5
f64 * 1e-3
f32 + k
(CAST(f32 AS double) + k) * (f64 - k)
f64 / k

-- comparisons, every width against another
i8 < i16
i16 <= i32
i32 >= i64
u32 > i32
i64 <> u32
k = i8
f32 = f64
f64 <> k
f32 < i32
i64 = f64
k == 0
k != 0
i8 = 127
i16 = -32768
i32 > 2147483646
u32 = 4294967295
i64 > 9223372036854775806
f64 > 1e299
f32 <= -0.5
s < s2
s = ''
s <> 'abc'
s > 'Z'
s >= 'é'
ts < ts_ms
ts = TIMESTAMP '2024-01-02 03:04:05.123456'
ts_ms >= TIMESTAMP '2024-01-01'
ts > TIMESTAMP '1969-12-31 23:59:59.9'
ts >= DATE '2024-01-01'
b = TRUE
b != FALSE
b = (k > 0)
(i8 > 0) <> b

-- AND, OR, NOT with NULLs (three-valued)
b AND k > 0
b OR k > 0
NOT b
NOT (b AND i8 > 0)
NOT k > 0 AND b
k > 0 OR k < 0 AND b
(k > 0) AND (s IS NULL)
b OR NULL
b AND NULL
NOT (b OR i16 < 0) OR f64 > 0
(b AND NOT b) IS NULL

-- IN and NOT IN, with NULLs in the list
i8 IN (1, 2, -128)
i8 IN (1, 2, NULL)
k NOT IN (0, 1)
k NOT IN (0, NULL)
k IN (i8, i16)
s IN ('abc', 'x', '')
s IN ('abc', NULL)
s NOT IN ('ABC', 'ß', 'NULL')
f64 IN (0.5, 2.5, -2.5)
u32 IN (0, 4294967295)
ts IN (TIMESTAMP '1970-01-01 00:00:00', TIMESTAMP '2024-01-02 03:04:05.123456')
b IN (TRUE, NULL)

-- BETWEEN
i32 BETWEEN -100 AND 100
k NOT BETWEEN -5 AND 5
i64 BETWEEN k AND 1000000
f64 BETWEEN -0.5 AND 2.5
s BETWEEN 'a' AND 'c'
ts BETWEEN TIMESTAMP '2000-01-01' AND TIMESTAMP '2050-01-01'
u32 BETWEEN i8 AND i16

-- IS NULL
i8 IS NULL
s IS NOT NULL
d IS NULL
ts_ms IS NOT NULL
(i32 % k) IS NULL
NULL IS NULL

-- LIKE, NOT LIKE, ESCAPE
s LIKE 'a%'
s LIKE '%b%'
s LIKE '_'
s LIKE '__'
s LIKE 'e_'
s NOT LIKE '%a%'
s LIKE ''
s LIKE '%'
s LIKE 'ABC'
s LIKE '%🦆%'
s LIKE '%\%%' ESCAPE '\'
s LIKE '%\_%' ESCAPE '\'
s LIKE '%\\%' ESCAPE '\'
s LIKE 'a!%b%' ESCAPE '!'
s NOT LIKE '%!_%' ESCAPE '!'
s2 LIKE '%,%,%'
s2 NOT LIKE '%,'

-- CASE, both forms
CASE WHEN k > 0 THEN 'pos' WHEN k < 0 THEN 'neg' ELSE 'zero' END
CASE WHEN k > 0 THEN 'pos' END
CASE k WHEN 0 THEN 'zero' WHEN 1 THEN 'one' END
CASE k WHEN 0 THEN 'zero' WHEN 1 THEN 'one' ELSE s END
CASE WHEN b THEN i8 ELSE i16 END
CASE WHEN b THEN f32 ELSE k END
CASE WHEN b THEN ts ELSE ts_ms END
CASE WHEN s IS NULL THEN 'none' WHEN s = '' THEN 'empty' ELSE lower(s) END
CASE b WHEN TRUE THEN 1 WHEN FALSE THEN 0 END
CASE WHEN NULL THEN 1 ELSE 2 END

-- coalesce
coalesce(i8, i16, i32, i64)
coalesce(s, s2, 'none')
coalesce(f64, k)
coalesce(NULL, k)
coalesce(ts, ts_ms)
coalesce(ts, TIMESTAMP '1970-01-01')
coalesce(b, k > 0, FALSE)

-- abs, lower, upper, length
abs(k)
abs(f64)
abs(f32)
abs(CAST(i8 AS bigint))
abs(i64 % 1000 - k)
--! error
abs(i64)
lower(s)
upper(s)
upper(s2)
lower(upper(s))
length(s)
length(s2)
length('')
length(coalesce(s, ''))

-- CAST among int, float, string, bool, timestamp
CAST(i8 AS bigint)
CAST(u32 AS bigint)
CAST(i64 AS double)
CAST(k AS double)
CAST(f32 AS double)
CAST(f32 AS bigint)
CAST(k AS int)
CAST(k AS float)
CAST(k AS int32)
CAST(i16 AS int32)
CAST(k AS varchar)
CAST(i64 AS varchar)
CAST(u32 AS text)
CAST(f64 AS varchar)
CAST(f32 AS varchar)
CAST(b AS varchar)
CAST(ts AS varchar)
CAST(ts_ms AS varchar)
CAST(si AS bigint)
CAST(sf AS double)
CAST(sb AS boolean)
CAST(sts AS timestamp)
CAST(k AS boolean)
CAST(b AS bigint)
CAST(b AS double)
CAST(ts AS timestamp)
CAST(ts_ms AS timestamp)
CAST(CAST(k AS varchar) AS bigint)
CAST(CAST(f64 AS varchar) AS double)
CAST(CAST(ts AS varchar) AS timestamp)
CAST(' 7 ' AS bigint)
CAST('+5' AS bigint)
CAST('1e3' AS double)
CAST('t' AS boolean)
CAST('2024-01-02T03:04:05' AS timestamp)
CAST(2.5 AS bigint)
CAST(-2.5 AS bigint)
--! error
CAST(s AS bigint)
--! error
CAST(f64 AS bigint)
--! error
CAST(f64 / 1e290 AS bigint)
--! error
CAST(i64 AS int32)
--! error
CAST(sf AS bigint)
--! error
CAST('x' AS boolean)

-- constants that do or do not fit a narrow column's own type
i8 < 200
i8 > -129
i8 = 1000
i32 = 2.5
i32 < 2.5
i16 >= -0.5
u32 > -1
u32 = -1
f32 = 0.1
f32 < 0.1
ts_ms = TIMESTAMP '2024-01-02 03:04:05.123'
ts_ms = TIMESTAMP '2024-01-02 03:04:05.123456'
ts_ms < TIMESTAMP '2024-01-02 03:04:05.1235'
i8 IN (1000, 1, -1)
f32 IN (0.5, 1.5, -2.5)

-- lists that are not constant, long lists, nesting
s IN (s2, 'x')
k IN (i8, i16, NULL)
s IN ('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '', ' ', 'ab', 'abc', 'ABC', 'x', 'xy', 'xyz', '_', '%', 'é', 'É', 'ß', '日本', '🦆', 'NULL')
k NOT IN (-10, -9, -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
CASE WHEN k > 0 THEN CASE WHEN b THEN 'pos-true' ELSE 'pos-other' END ELSE coalesce(s2, 'none') END
CASE WHEN b THEN NULL ELSE k END
CASE k % 3 WHEN 0 THEN f64 WHEN 1 THEN f32 ELSE i32 END
CASE WHEN i8 IS NULL THEN ts END
coalesce(i8, 0)
coalesce(CASE WHEN k > 0 THEN k END, -k)
NOT (k IN (1, 2) OR s LIKE 'a%')
(k > 0) = (i8 > 0)
k BETWEEN i8 AND i16 AND NOT b
length(lower(s)) = length(s)
lower(s) LIKE '%ä%'
upper(s2) NOT LIKE '%,%'
NULL IS NOT NULL
CAST(NULL AS bigint)
CAST(NULL AS varchar) IS NULL
CAST(k > 0 AS varchar)
CAST(CAST(b AS varchar) AS boolean)
CAST(CAST(i64 AS varchar) AS bigint) = i64
CAST(ts_ms AS varchar) < CAST(ts AS varchar)

-- NULL in every position
k BETWEEN NULL AND 5
NULL IN (1, 2)
k IN (NULL)
NOT NULL
-NULL
NULL + k
s LIKE NULL
CASE NULL WHEN NULL THEN 1 ELSE 2 END
CASE k WHEN NULL THEN 1 ELSE 2 END
CASE WHEN k > 0 THEN 1 WHEN k > 0 THEN 2 END
coalesce(NULL, NULL, s)
lower(NULL)
abs(NULL)
length(NULL)

-- more arithmetic and casts
-f64
-f32
f64 % 2.5
f32 % 1
k % 2.5
CAST(b AS int32)
CAST(si AS bigint) % 7
CAST(sb AS boolean) AND b
CAST(sf AS double) * 2
length(s) > 3 AND s LIKE '%a%'
--! error
CAST(u32 AS int32)
NULL BETWEEN NULL AND NULL
NULL NOT BETWEEN NULL AND NULL
CASE NULL WHEN NULL THEN 1 END
-- decimal literals: exact in SQL (CAST rounds half away from zero; a FLOAT column compares with the literal rounded to FLOAT)
CAST(0.5 AS bigint)
CAST(-1.5 AS int)
CAST(1.5 AS smallint)
f32 IN (0.1, 1.5)
f32 < 0.1
f32 >= -0.1
