// Package arrowcheck validates record batches that come from outside the
// process (an Arrow file, a socket) with the checks of arrow-go's
// array.ValidateRecordFull, faster for string columns. arrow-go checks a
// string column value by value, one utf8.ValidString call per value (about
// 40 ns for a short string, which made validation the largest cost of
// reading an Arrow file or a stream of one). RecordFull checks the offsets
// in one loop and the UTF-8 of all the values in one utf8.Valid pass over
// the bytes they span, plus one test per offset that no value starts
// inside a multi-byte character: a concatenation of valid strings is valid
// UTF-8, and a valid UTF-8 sequence cut only at character starts is made of
// valid strings, so the two checks accept exactly what arrow-go accepts.
// When a column fails, arrow-go's own check runs to name the value.
package arrowcheck
