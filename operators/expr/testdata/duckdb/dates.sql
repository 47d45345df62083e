-- Dates, timestamps, intervals and their functions, checked against DuckDB.
-- One expression per line over table t (see types.sql).
-- comparisons: a string constant converts to the column's type
d = '2024-02-29'
d < '2000-01-02'
d >= DATE '2000-01-01'
ts > '2024-01-01 00:00:00'
ts_ms <= '1970-01-01 00:00:00.001'
d = ts
d < ts_ms
d BETWEEN '1969-12-31' AND '2000-01-01'
ts NOT BETWEEN DATE '2000-01-01' AND DATE '2024-06-01'
d IN (DATE '2024-02-29', DATE '1582-10-15')
d IN ('2000-01-01', '1969-12-31')
CASE WHEN b THEN d ELSE DATE '1999-12-31' END
CASE WHEN b THEN d ELSE ts END
coalesce(d, DATE '1970-01-01')
coalesce(ts, ts_ms)
-- date arithmetic
d + 1
d - 1
d + 365
d - DATE '2000-01-01'
DATE '2024-03-01' - d
d + INTERVAL 1 MONTH
d - INTERVAL '1 year'
d + INTERVAL 1 HOUR
ts + INTERVAL 1 HOUR
ts - INTERVAL '90 minutes'
ts + INTERVAL '1 month'
ts - INTERVAL 1 MONTH
ts + INTERVAL 2 DAY
ts + INTERVAL '1 year 2 months 3 days 04:05:06'
INTERVAL 1 WEEK + ts
ts_ms + INTERVAL '1.5 seconds'
ts_ms - INTERVAL 3 MILLISECONDS
DATE '2024-01-31' + INTERVAL 1 MONTH
DATE '2023-01-31' + INTERVAL 1 MONTH
DATE '2024-02-29' + INTERVAL 1 YEAR
TIMESTAMP '2024-03-31 10:00:00' - INTERVAL 1 MONTH
-- date_part and extract
date_part('year', d)
date_part('month', d)
date_part('day', d)
date_part('dow', d)
date_part('isodow', d)
date_part('doy', d)
date_part('week', d)
date_part('isoyear', d)
date_part('yearweek', d)
date_part('quarter', d)
date_part('decade', d)
date_part('century', d)
date_part('millennium', d)
date_part('epoch', d)
date_part('hour', ts)
date_part('minute', ts)
date_part('second', ts)
date_part('millisecond', ts)
date_part('microsecond', ts)
date_part('epoch', ts)
date_part('epoch', ts_ms)
date_part('dayofweek', ts_ms)
date_part('dayofyear', ts_ms)
extract(year FROM ts)
extract(month FROM d)
extract(epoch FROM ts_ms)
extract('day' FROM ts_ms)
-- date_trunc
date_trunc('year', d)
date_trunc('quarter', d)
date_trunc('month', d)
date_trunc('week', d)
date_trunc('day', d)
date_trunc('hour', ts)
date_trunc('minute', ts)
date_trunc('second', ts)
date_trunc('millisecond', ts)
date_trunc('microsecond', ts)
date_trunc('week', ts)
date_trunc('month', ts_ms)
date_trunc('decade', ts_ms)
date_trunc('century', d)
date_trunc('millennium', d)
-- strftime and strptime
strftime(d, '%Y-%m-%d')
strftime(ts, '%Y-%m-%d %H:%M:%S.%f')
strftime(ts, '%d/%m/%y %I:%M %p')
strftime(ts_ms, '%a %A %b %B %j')
strftime(ts_ms, '%H:%M:%S.%g')
strftime(d, '%w %u %U %W %V %G')
strftime(ts, '%-d %-m %-H')
strftime(ts, '%c')
strptime(s, '%Y-%m-%d')
strptime('2024-06-02 13:04:05', '%Y-%m-%d %H:%M:%S')
strptime('02/06/2024', '%d/%m/%Y')
strptime('2024-06-02 13:04:05.123', '%Y-%m-%d %H:%M:%S.%f')
strptime('Jun 2 2024 1pm', '%b %d %Y %I%p')
strptime('2024-06-02 13:04:05+0200', '%Y-%m-%d %H:%M:%S%z')
strptime('69-06-02', '%y-%m-%d')
strptime('2024 154', '%Y %j')
-- epoch_ms
epoch_ms(ts)
epoch_ms(ts_ms)
epoch_ms(d)
epoch_ms(i64)
epoch_ms(-1)
-- TIMESTAMP literals
TIMESTAMP '2024-01-05T00:00:00Z'
TIMESTAMP '2024-01-05 10:00:00.5'
DATE '2024-02-29'
