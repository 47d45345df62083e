// Package coltype names the Arrow column types a pipeline file may write in
// a `columns:` list ("int64", "string", "timestamp", ...), in both
// directions. The names follow the Arrow C++ type factory names
// (arrow::int64(), arrow::utf8() spelled "string", ...), with "timestamp"
// meaning microseconds in UTC, the unit Parquet stores without loss.
package coltype
