// Package operators holds zflow's built-in operators, one file per operator:
// sources (source_*.go), transforms (transform_*.go) and sinks (sink_*.go).
// Each registers its [engine.Spec] in init, the database/sql driver pattern,
// and also exports it (GenerateSpec, CSVSourceSpec, ParquetSinkSpec, ...) so
// an embedder can build a registry without globals.
//
// # File sources
//
// generate, csv, ndjson, parquet and arrow read their schema at compile time
// (a file's header, footer or a sample of its rows, or an explicit column
// list) and allocate every batch from the run's allocator
// (InstanceContext.Alloc). Batches hold settings.batch_rows rows unless the
// node sets batch_rows.
//
// # Union
//
// union merges its inputs by position (the same columns, passed by
// reference) or, with by_name: true, by column name: the output has the
// first input's columns, then those the other inputs add, in order of
// appearance. A column an input lacks is one all-null array per batch
// (created bytes); types that differ are widened (union_widen.go has the
// rules: integers to the wider signed type, to float64 with a float;
// timestamps to the finest unit; string and large_string to large_string),
// and the widened column is a copy counted on the ledger as "union cast".
// Types that do not widen are a compile error naming both inputs, unless
// widen_to_string: true makes the column text. Columns whose type is
// already the output's pass by reference.
//
// # File sinks
//
// parquet, arrow, csv and ndjson write to a temporary file next to the
// final path (package internal/atomicfile): the executor's Close finishes the
// file, Commit renames it into place, Abort removes it; a failed or
// cancelled run never leaves a partial file under the final name. Encoding is
// a copy of the payload and is reported to the copy ledger. stdout prints
// and discard drops.
//
// The file sinks are engine.UndoableSink, so a run commits them all or none:
// Commit keeps the file it replaces as a hard link
// (".out.parquet.zflow-….prev") until the executor calls Forget once every
// sink has committed; if a later sink's Commit fails, Rollback puts the old
// file back (or removes the new one where there was none). The stdout sink
// cannot be undone: it commits after them, so it prints only once they have
// committed.
//
// The files next to the final name carry their owner in their name (pid,
// process start time, boot id, pid namespace: see atomicfile.FormatName).
// When a sink starts, it first removes what dead runs of the same final path
// left (a run killed with SIGKILL, or by a second Ctrl-C): their temporary
// files, and, for a run that died in the middle of its commit, it undoes
// that commit: the previous file goes back under the final name (a run that
// never ended well leaves the previous state, and the user's old file is
// never lost). It logs what it did, and fails rather than write if the
// cleanup fails. Live runs' files, other paths' files and any name that is
// not exactly ours are never touched.
package operators
