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
//   - later: zero-copy sockets (MSG_ZEROCOPY, SEND_ZC) and rdma-style
//     one-sided access.
//
// Each backend probes itself at run time; auto falls back to posix with
// the reason, never silently, and an explicit choice that cannot run fails
// with it (tests play a refusing machine with storage.Refuse). The file
// operators (package operators, FileIO) read and write through them.
package io
