-- Dates, timestamps, intervals and the date and time functions
-- (operators/expr/func_time.go, strtime.go, interval.go, civil.go).
-- A string constant converts to the column's type.
d = '2000-02-29'
d < '1970-01-01'
d >= DATE '2000-01-01'
ts > '2024-01-01 00:00:00'
ts_ms <= '2000-02-29 00:00:00'
-- A date meets a timestamp as a timestamp.
d = ts
d < ts_ms
CAST(ts AS DATE) = d
d BETWEEN '1969-12-31' AND '2000-01-01'
ts NOT BETWEEN DATE '2000-01-01' AND DATE '2024-06-01'
d IN (DATE '2000-02-29', DATE '1900-01-01')
d IN ('1970-01-01', '1969-12-31')
CASE WHEN b THEN d ELSE DATE '1999-12-31' END
CASE WHEN b THEN d ELSE ts END
coalesce(d, DATE '1970-01-01')
coalesce(ts, ts_ms)
coalesce(d, ts_ms)
-- Date arithmetic.
d + 1
d - 1
d + 365
d + CAST(k AS INTEGER)
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
ts + INTERVAL '1 day ago'
DATE '2024-01-31' + INTERVAL 1 MONTH
DATE '2023-01-31' + INTERVAL 1 MONTH
DATE '2024-02-29' + INTERVAL 1 YEAR
TIMESTAMP '2024-03-31 10:00:00' - INTERVAL 1 MONTH
-- date_part and extract.
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
date_part('julian', ts)
date_part('dayofweek', ts_ms)
date_part('dayofyear', ts_ms)
date_part('era', d)
extract(year FROM ts)
extract(month FROM d)
extract(epoch FROM ts_ms)
extract('day' FROM ts_ms)
--! error
date_part('yaer', d)
-- date_trunc.
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
date_trunc('isoyear', d)
-- strftime and strptime.
strftime(d, '%Y-%m-%d')
strftime(ts, '%Y-%m-%d %H:%M:%S.%f')
strftime(ts, '%d/%m/%y %I:%M %p')
strftime(ts_ms, '%a %A %b %B %j')
strftime(ts_ms, '%H:%M:%S.%g')
strftime(d, '%w %u %U %W %V %G')
strftime(ts, '%-d %-m %-H %-I')
strftime(ts, '%c')
strftime(ts, '%x %X')
strptime(strftime(ts, '%d.%m.%Y %H:%M:%S.%f'), '%d.%m.%Y %H:%M:%S.%f')
strptime(strftime(d, '%Y/%j'), '%Y/%j')
strptime('2024-06-02 13:04:05', '%Y-%m-%d %H:%M:%S')
strptime('02/06/2024', '%d/%m/%Y')
strptime('2024-06-02 13:04:05.123', '%Y-%m-%d %H:%M:%S.%f')
strptime('Jun 2 2024 1pm', '%b %d %Y %I%p')
strptime('2024-06-02 13:04:05+0200', '%Y-%m-%d %H:%M:%S%z')
strptime('69-06-02', '%y-%m-%d')
strptime('Sunday June 02 2024', '%A %B %d %Y')
--! error
strptime(sts, '%Y-%m-%d')
--! error
strftime(ts, '%Q')
-- epoch_ms.
epoch_ms(ts)
epoch_ms(ts_ms)
epoch_ms(d)
epoch_ms(k * 86400000)
epoch_ms(-1)
--! error
epoch_ms(i64)
-- Literals.
TIMESTAMP '2024-01-05T00:00:00Z'
TIMESTAMP '2024-01-05 10:00:00.5'
DATE '2024-02-29'
DATE '1969-12-31' + CAST(k AS INTEGER)
-- date_diff counts part boundaries; make_date builds a date.
date_diff('day', d, ts)
date_diff('month', d, DATE '2024-03-31')
date_diff('year', ts_ms, d)
date_diff('quarter', d, ts)
date_diff('week', d, ts_ms)
date_diff('hour', ts, ts_ms)
date_diff('minute', ts_ms, ts)
date_diff('second', ts, TIMESTAMP '2000-01-01 00:00:00')
date_diff('millisecond', ts_ms, ts)
date_diff('decade', d, DATE '2000-01-01')
datediff('isoyear', d, ts)
make_date(2000 + CAST(k AS INTEGER) * 400, 2, 29)
make_date(date_part('year', d), date_part('month', d), 1)
--! error
make_date(2023, 2, 29)
TIMESTAMP '2024-01-05 10:00:00+02:00'
TIMESTAMPTZ '2024-01-05 10:00:00+02:00'
TIMESTAMPTZ '2024-01-05T10:00:00-0530' > CAST(ts AS TIMESTAMPTZ)
DATE '2024-01-05 10:00'
DATE '1600-03-01' <= d
ts + INTERVAL 1 DAY * 3
ts - 3 * INTERVAL '1 hour 30 minutes'
ts + (INTERVAL 1 MONTH - INTERVAL 1 DAY)
ts + (INTERVAL 1 MONTH + INTERVAL 1 DAY)
d + INTERVAL 1 DAY * 1.5
d + INTERVAL 1 MONTH * 1.5
-- epoch, epoch_us, epoch_ns, to_timestamp; an interval as text.
epoch(ts)
epoch(d)
epoch(ts_ms)
epoch_us(ts)
epoch_us(d)
epoch_ns(ts_ms)
--! error
epoch_ns(d)
to_timestamp(CAST(k AS DOUBLE) * 1e6 + 0.5)
to_timestamp(f32)
to_timestamp(epoch(ts))
CAST(INTERVAL '90 minutes' AS VARCHAR)
CAST(INTERVAL '1 year 2 months 3 days' AS VARCHAR)
CAST(INTERVAL '-1 day 01:00:00.25' AS VARCHAR)
