// Package duckdbtest runs SQL in DuckDB for tests, so that zflow's results
// can be checked against DuckDB as an oracle (the expression language, the
// file sinks and sources).
//
// DuckDB runs in a separate node process through @duckdb/node-api, installed
// under bench/duckdb/node_modules by `npm ci` (pinned by
// bench/duckdb/package.json; `make test` installs node, npm and the package
// when they are missing). The repository root is found by walking up from
// the working directory to go.mod. Nothing is linked into the test binary:
// no cgo, no DuckDB library in go.mod.
//
//	db := duckdbtest.Open(t) // skips t when DuckDB cannot run here
//	res := db.Run(t,
//		"CREATE TABLE t AS SELECT * FROM read_parquet('"+path+"')",
//		"SELECT a, b FROM t ORDER BY a")
//	if res[1].Err != "" { ... }
//	got := res[1].Strings() // "1|x", "2|NULL", ...
//
// Open checks once per test binary that node, the npm package and the script
// are there and that DuckDB answers a query. When they are not it skips the
// test, saying how to install them; with ZFLOW_REQUIRE_DUCKDB=1 in the
// environment (`make test` sets it, so CI cannot pass by skipping) it fails
// the test instead.
//
// Each Run is one node process (bench/duckdb/query.mjs) and one fresh
// in-memory DuckDB session: the statements go to it as a JSON array on
// stdin, the results come back as a JSON array on stdout. The session first
// runs SET threads=1, so that the order of rows without ORDER BY is the same
// on every run, and SET TimeZone='UTC'. Statements run in order; an error in
// one is recorded in its Result (DuckDB's message) and the next ones still
// run, so a test can check both a failing statement and what follows it in
// the same session. A node process costs about 100 ms: put many statements
// in one Run rather than many Runs.
//
// Values come back as text, DuckDB's own: a query's values are what
// CAST(v AS VARCHAR) gives in DuckDB (so 0.1 is "0.1", a DECIMAL(18,3) is
// "1.500", a timestamp is "2024-01-02 03:04:05.123456"), NULL is a nil
// value. Statements that cannot be a subquery (PRAGMA, COPY, CREATE)
// are run as they are and their few values rendered by @duckdb/node-api. To
// compare values by type rather than by text, have DuckDB write Parquet
// (COPY (...) TO 'file' (FORMAT parquet)) and read it back with pqarrow.
package duckdbtest
