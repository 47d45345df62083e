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
// The file sources read many files as one (filelist.go): path is a file, a
// glob (** spans directories), a directory (recursive, lexical order,
// hidden and _-prefixed names skipped) or a list of these, resolved and
// sorted at compile time; a glob matching nothing is a compile error naming
// it. The first file sets the columns (a csv or ndjson source infers its
// types from it) and every other file is checked against it at compile time
// (a csv file's header; a parquet or arrow file's schema), an error naming
// both files and the column; a value of a later file that does not parse
// as its column's type fails the run naming the file and line. Files are
// read one after the other and a batch never spans two. hive_partitioning
// (auto: when every file has the same key=value directories below the
// directory or glob root) appends those keys as columns (int64, date32 or
// string, inferred from all the values; __HIVE_DEFAULT_PARTITION__ is
// null), and filename appends the file's name; both are constant per file
// and made per batch from the run's allocator. The plan says how many files
// a source reads, the summary how many each source read and each sink wrote
// (InstanceContext.CountFiles). A parallel parquet source spreads row
// groups over its instances across files, a parallel arrow source the
// batches of IPC files and whole streams.
//
// Path "-" is standard input (engine.Stdin), for csv, ndjson (compression
// is still found by its magic bytes: textin peeks through a buffer and
// never seeks) and Arrow IPC streams. The schema is read at compile time by
// peeking at the stream, which the run then reads from its start; a parquet
// source refuses "-", since Parquet's footer needs a seekable file, and an
// arrow source refuses an IPC file (not a stream) there for the same reason.
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
// # Storage backends
//
// Every file source and sink embeds FileIO (io, direct, queue_depth) and
// picks a backend of io/storage per file at Build (files.go): text
// sources read through seqReader (batches of aligned 1 MiB requests),
// Parquet and Arrow through a ReaderAt over the backend's file, Arrow IPC
// files on mmap through mmap.OpenIPC with zero copies (the ledger's
// "mapped file" references), raw files through io/raw's Reader straight
// into the column's buffer (or a slice of the mapping on mmap); sinks
// write through seqWriter into the atomicfile's temporary file, the raw
// sink through io/raw's Writer from the batches' own buffers. The choice and its reason go to the plan
// (DescribeIO), the summary and the span (InstanceContext.SetIO). This
// package links io/posix and io/mmap; io/uring is linked by the binary
// (cmd/zflow), so that only what links it needs -checklinkname=0.
//
// # File sinks
//
// parquet, arrow, csv, ndjson and raw write to a temporary file next to the
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
// With path "-" a file sink writes standard output (InstanceContext.Stdout,
// which the caller chooses: engine.RunOptions.Stdout): csv, ndjson, parquet
// (its writer only appends) and arrow, file or stream. The bytes go out as
// batches arrive and cannot be taken back, so such a sink is a plain sink
// (stdSink hides Rollback and Forget) and commits after the undoable ones; a
// failed run may have printed part of its rows, and exits with an error. The
// stdout sink is the other way to print: it renders a table (after the run
// has succeeded) or csv/ndjson for people, where a file sink with "-" writes
// the format a program reads (parquet or an Arrow stream into another
// zflow, duckdb or pyarrow). Both write the run's standard output; a
// pipeline has one node writing there.
//
// With partition_by (sink_partition.go) the parquet, csv and ndjson sinks
// write a Hive-partitioned tree: path/k1=v1/k2=v2/part-N.ext, the keys'
// values percent-encoded as DuckDB writes them and not stored inside the
// files. The tree is written under a temporary sibling directory and
// published as a whole (atomicfile.Dir): Commit renames it into place,
// keeping the tree it replaced until Forget, Rollback puts that back, a
// failed run removes the temporary tree, and the next run undoes what a
// killed one left (atomicfile.RecoverDir). The part files are written
// through the sink's storage backend (io, direct). At most max_open_files partition
// files are open at once (an LRU): memory is bounded by that many encoders
// (a parquet file's row group), and a partition closed for another that
// gets rows again goes on in a new file, part-1, part-2.... Rows grouped by
// key go to their files as zero-copy slices; a batch whose keys are mixed is
// gathered per partition first (a copy, "partition gather").
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
