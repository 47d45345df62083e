-- strings.sql: the string functions and || against DuckDB, over table t
-- (columns and dialect notes in README.md). One expression a line.
-- s holds blanks, tabs, quotes, multi-byte letters, combining accents and
-- emoji; s2 comma-separated parts. Positions count code points in both.

-- substr and substring: 1-based, 0 and negative starts, negative lengths
substr(s, 2)
substr(s, 2, 3)
substring(s, 0, 2)
substr(s, -3)
substr(s, -3, 2)
substr(s, 3, -2)
substr(s, k)
substr(s, k, k)
substring(s2, 2, k)
substr(s, CAST(i8 AS bigint), 4)
substr('hello', -7, 3)
substr(s, NULL)
length(substr(s, 2, 3))
--! error
substr(s, i64)

-- replace: every occurrence, left to right; an empty pattern changes nothing
replace(s, ' ', '_')
replace(s2, ',', '')
replace(s2, ',', ' | ')
replace(s, '', 'x')
replace(s, 'a', s2)
replace('aaaa', 'aa', 'a')
replace(s, NULL, 'x')

-- trim, ltrim, rtrim: spaces only by default; a set of characters
trim(s)
ltrim(s)
rtrim(s)
trim(s2, ',')
ltrim(s2, ',')
rtrim(s2, ',')
trim(s, ' _%é')
trim(s, '')
trim(s, s2)
trim(s, NULL)

-- concat skips NULLs; || is NULL when either side is
concat(s, '-', s2)
concat(s, k, b)
concat(NULL, s)
concat(s2, NULL, s2)
s || s2
s || '-' || k
'a' || k + 2
k || b
s || NULL
(s || s2) = concat(s, s2)
length(s || s2)
s || s2 LIKE 'a%'

-- split_part: 1-based, negative from the end, '' past the end or at 0
split_part(s2, ',', 1)
split_part(s2, ',', 2)
split_part(s2, ',', -1)
split_part(s2, ',', 0)
split_part(s2, ',', k)
split_part(s, '', 2)
split_part(s, ' ', -2)
split_part(s2, s, 1)

-- starts_with and contains
starts_with(s, 'a')
starts_with(s, '')
starts_with(s2, s)
contains(s, ' ')
contains(s2, ',,')
contains(s, '')
contains(s, s2)

-- regexp_matches and regexp_replace (RE2 in both)
regexp_matches(s, 'x')
regexp_matches(s, '^[A-Z]')
regexp_matches(s, 'x', 'i')
regexp_matches(s2, '^[^,]*,[^,]*$')
regexp_matches(s, 'a.c', 'l')
regexp_matches(s, '%', 'l')
regexp_matches(s, '')
regexp_matches(s, NULL)
regexp_replace(s, '[aeiou]', '*')
regexp_replace(s, '[aeiou]', '*', 'g')
regexp_replace(s, 'A', '_', 'gi')
regexp_replace(s2, '([^,]*),(.*)', '\2,\1')
regexp_replace(s2, ',', '\0\0', 'g')
regexp_replace(s, '', '-', 'g')
regexp_replace(s, 'b*', 'X', 'g')
regexp_replace(s, '(.)', '\9')
regexp_replace(s, '\s+', ' ', 'g')
regexp_matches(s, 'ω', 'i')
regexp_matches(s, 'İ', 'i')
regexp_matches(s, '\w+$')
regexp_matches(s, '^\s')
regexp_matches(s, '[[:alpha:]]{3}')
regexp_matches(s, '\p{L}\p{Mn}')
regexp_replace(s, 'ж', 'zh', 'gi')
regexp_replace(s, '^(.)(.*)$', '\2\1')
regexp_replace(s, '.', '.', 'gs')
regexp_replace(s2, '[^,]+', '<\0>', 'g')
--! error
regexp_matches(s, '(')
--! error
regexp_replace(s, 'a', 'b', 'q')
