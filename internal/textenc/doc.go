// Package textenc formats Arrow values as text, for the CSV, NDJSON and
// table writers. It appends into caller-owned byte slices and does not
// allocate per value for the common types (integers, floats, booleans,
// strings, binary, dates, timestamps); other types fall back to arrow-go's
// ValueStr and encoding/json.
//
// Formats: floats are written like encoding/json writes them (shortest
// representation that round-trips, exponent only below 1e-6 or from 1e21),
// with ".0" added to integral values so a reader infers a float again;
// timestamps as RFC 3339 with as many fraction digits as needed ("Z" or an
// offset when the type has a time zone); dates as 2006-01-02; binary as
// standard base64. JSON strings are escaped as RFC 8259 requires, without
// encoding/json's HTML escaping; invalid UTF-8 becomes U+FFFD.
package textenc
