// Package bench holds zflow's benchmark harnesses and their recorded
// results (results/, with the commands that made them in results/README.md).
//
// The engine benchmark (engine_bench_test.go, and cmd/overhead outside `go
// test`) runs the core pipeline replay|generate → filter → project → discard
// with the real executor and the real filter, project and discard operators,
// and times, in the same run and over the same pre-generated batches, a plain
// loop making the very same expr calls (the compiled predicate's Select, then
// the computed column's Eval). The quotient of the two is the engine overhead
// ratio; their difference spread over batches × edges is the cost of one edge
// crossing per batch. Only ratios taken in one run mean anything on these
// machines (docs/ARCHITECTURE.md, "Measured facts"), so every figure here is paired with its baseline.
//
// The DuckDB comparison (duckdb.sh, pipelines/, duckdb/) runs both engines
// as whole processes with hyperfine on the same generated CSV file.
//
// Nothing outside bench/ imports this package.
package bench
