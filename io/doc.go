// Package io holds only subpackages, so that no package a file operator
// imports is named io (which the standard library's io would shadow):
//
//   - io/storage (package storage): the storage backends' contract —
//     Backend, File with batched positional reads and writes into
//     caller-owned buffers, an io.ReaderAt adapter — their registry, and
//     Select, which picks a backend per file system and device and says
//     why;
//   - io/posix, io/uring, io/mmap: the backends (pread/pwrite; io_uring
//     through giouring; read-only mappings with zero-copy Arrow IPC);
//   - io/raw (package raw): byte ranges of a storage.File read straight
//     into Arrow buffers (the read buffer is the column's buffer, aligned
//     for O_DIRECT; a slice of the mapping on mmap) and written from them
//     (O_DIRECT's unaligned rest bounced and counted), for the raw source
//     and sink and for block backends to come;
//   - io/netzc (package netzc): send paths for a TCP socket — copy (writev
//     from the caller's buffers), msg_zerocopy (MSG_ZEROCOPY, buffers
//     released only when the error queue reports their completion, copied
//     completions counted) — and auto, which picks between them per
//     message size with a reason; uring_zc (io_uring SENDMSG_ZC, released
//     on each request's notification) lives in io/netzc/uringzc and
//     registers itself into netzc, so only binaries that import it link
//     io/uring and need -checklinkname=0 (the zflow command does);
//   - io/stream (package stream): Arrow IPC record batches over TCP, as a
//     plain Arrow stream or in the zflow protocol (handshake, credit,
//     sequence numbers, trace carrier, checked end), used by the tcp_out
//     sink and the tcp_in source; the wire format is docs/stream.md;
//   - io/rdma (package rdma): the verbs model (protection domain, memory
//     regions with lkey/rkey, reliable-connected queue pairs, completion
//     queues) with an emulated provider — one-sided WRITE, WRITE_WITH_IMM
//     and READ over a TCP connection, placed by a memory copy into the
//     peer's memfd region on one host — and the batch stream of the
//     rdma_out sink and rdma_in source (docs/rdma.md).
//
// Each backend probes itself at run time; auto falls back to posix with
// the reason, never silently, and an explicit choice that cannot run fails
// with it (tests play a refusing machine with storage.Refuse). The file
// operators (package operators, FileIO) read and write through them.
//
// make bench-io measures the backends against fio on the same files,
// block sizes and queue depths in one run (bench/results/README.md,
// section F, with the ratios and their causes): uring is at or above fio's
// io_uring on tmpfs and for random reads with depth on the disk, below it
// for sequential O_DIRECT reads (a batch drains the ring before the next
// is submitted); posix is at or above psync but for 1 MiB sequential reads
// on tmpfs; the arrow source on a fresh mapping of a tmpfs file pays a
// page fault per page and stays far below fio's pread bandwidth.
package io
