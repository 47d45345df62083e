// Package fastts parses the common ISO 8601 / RFC 3339 date and timestamp
// shapes straight from bytes to an integer count since the Unix epoch,
// without going through time.Parse.
//
// It is a fast path, not a parser of record: it accepts only
//
//	YYYY-MM-DD
//	YYYY-MM-DD[T ]HH:MM:SS[.F…][Z|±HH:MM|±HHMM]     (1 to 9 fraction digits)
//
// and reports ok == false for anything else, in which case the caller falls
// back to its general parser (arrow.TimestampFromStringInLocation,
// time.Parse). Whenever it reports ok it returns exactly what that slow
// path returns for the same input; a differential fuzz test holds it to
// that. So it refuses, rather than decides, every input the slow path would
// reject or treat specially: a leap second (SS = 60, which time.Parse
// rejects), hour 24, more fraction digits than the unit holds (arrow
// rejects them), offsets of 24 hours or more, lower-case 'z' or 't', and
// values that overflow int64 at the requested unit.
//
// Dates are proleptic Gregorian with a year of exactly four digits (0000 to
// 9999), as time.Parse reads "2006". Days since the epoch come from Howard
// Hinnant's days_from_civil ("chrono-Compatible Low-Level Date
// Algorithms", https://howardhinnant.github.io/date_algorithms.html).
package fastts
