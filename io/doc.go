// Package io holds only subpackages: the storage and network backend
// contracts (batched positional read/write into caller-owned buffers,
// zero-copy send with a completion that says when a buffer is free again)
// and their implementations: uring (io_uring through giouring), posix, mmap,
// zero-copy sockets (MSG_ZEROCOPY, SEND_ZC) and rdma-style one-sided access.
// Each backend probes itself at run time; the engine falls back to posix
// with a logged reason, never silently.
package io
