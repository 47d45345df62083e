// Package io holds only subpackages: the storage and network backend
// contracts (batched positional read/write into caller-owned buffers,
// zero-copy send with a completion that says when a buffer is free again)
// and their implementations: uring (io_uring through giouring), posix, mmap,
// zero-copy sockets (MSG_ZEROCOPY, SEND_ZC) and rdma-style one-sided access.
// Each backend probes itself at run time; the engine falls back to posix
// with a logged reason, never silently.
//
// Built so far on the network side:
//
//   - netzc: send paths for a TCP socket — copy (writev from the caller's
//     buffers), msg_zerocopy (MSG_ZEROCOPY, buffers released only when the
//     error queue reports their completion, copied completions counted) —
//     and auto, which picks between them per message size with a reason.
//     uring_zc waits for io/uring.
//   - stream: Arrow IPC record batches over TCP, as a plain Arrow stream or
//     in the zflow protocol (handshake, credit, sequence numbers, trace
//     carrier, checked end); the tcp_out sink and tcp_in source use it. The
//     wire format is docs/stream.md.
package io
