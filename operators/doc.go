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
// # File sinks
//
// parquet, arrow, csv and ndjson write to a temporary file next to the
// final path (package internal/atomicfile): the executor's Close finishes the
// file, Commit renames it into place, Abort removes it; a failed or
// cancelled run never leaves a partial file under the final name. Encoding is
// a copy of the payload and is reported to the copy ledger. stdout prints
// and discard drops.
package operators
