// Package uring is the io_uring storage backend (registered as "uring" in
// io/storage), on github.com/pawelgaczynski/giouring. Binaries and test
// binaries that link it need -ldflags=-checklinkname=0 (giouring reaches
// syscall.munmap through go:linkname); the Makefile adds it where needed.
//
// # Rings and threads
//
// A Ring is one io_uring instance. A File opened through the backend
// (Open, storage.Select) gets a ring of its own, sized to the queue depth:
// a worker's file is a worker's ring. Ring.Open puts several files on one
// ring (and its registered buffers). A ring's methods hold its lock, so
// sharing one between goroutines is safe but serialises them. The ring is
// set up without IORING_SETUP_SINGLE_ISSUER, so the submitting goroutine
// may move between OS threads and runtime.LockOSThread is not needed, with
// or without SQPOLL (Config.SQPoll; the kernel's poller thread reads the
// submission queue whichever thread filled it).
//
// # A batch
//
// File.ReadBatch and WriteBatch keep up to the ring's size of requests in
// flight: they fill SQEs, submit them and wait for completions in one
// io_uring_enter (with a 20 ms timeout, so a cancelled context is seen
// even while nothing completes) — for one completion while requests still
// wait for an SQE, for every one still due once all are submitted, so a
// batch that fits the ring costs one io_uring_enter, not one per
// completion —, reap every completion that is ready, and
// queue again what must go again: EINTR and EAGAIN results (retried, at
// most 1000 times per request), and the rest of a short transfer (a read
// that returns 0 is the file's end: N < len(Buf) with io.EOF). A buffer
// inside a region registered with Ring.RegisterBuffers
// (IORING_REGISTER_BUFFERS over an arena's extents, buffers.Arena.Extents)
// is read with READ_FIXED or
// written with WRITE_FIXED, landing straight in the Arrow buffer carved
// from that extent; other buffers go as plain READ/WRITE. Files go through
// the ring's registered file table (IOSQE_FIXED_FILE) when the kernel
// allows it.
//
// # A queue
//
// File.NewQueue is the asynchronous form (storage.Queue): a slot per
// request up to the ring's size, its SQEs tagged queueBit|slot; Submit
// fills SQEs and submits them with one io_uring_enter that does not wait;
// Reap resubmits what must go again (the same retries and continuations
// as a batch), waits in one io_uring_enter for as many completions as
// asked (20 ms at a time, to see a cancelled context), reaps every one
// ready and hands the finished slots back. A ring has one open queue at a
// time, and a batch on it is refused while the queue has requests
// pending. Cancellation and Close send IORING_OP_ASYNC_CANCEL for every
// slot in flight and wait for each CQE before returning.
//
// With direct: true the file is opened O_DIRECT; File.Align is statx's
// STATX_DIOALIGN (or the device's logical block size) and a request whose
// buffer address, offset or length is not a multiple of it is refused
// with storage.ErrUnaligned before anything is submitted (counted in
// Stats.Refused); nothing is bounced. A short O_DIRECT read that ends
// inside a block is the end of the file.
//
// # Cancellation
//
// When the context is cancelled during a batch, requests not yet submitted
// fail with the context's error, an IORING_OP_ASYNC_CANCEL is sent for
// every request in flight, and the batch still waits for every completion
// (cancelled or finished) before it returns: when ReadBatch returns, the
// kernel holds no reference to any buffer, and Ring.InFlight is zero.
// Ring.Close refuses to tear down a ring with anything in flight. The one
// exception is io_uring_enter itself failing (with anything but EINTR,
// ETIME, EAGAIN or EBUSY): nothing more can be learnt about the requests
// in flight, so the batch returns an error that says not to reuse its
// buffers, and the ring is marked broken (every later batch fails; Close
// still tears it down).
//
// # When io_uring is refused
//
// Available probes once per process: kernel.io_uring_disabled (2: off for
// everyone; 1: root or io_uring_group only), then a one-entry ring
// (ENOSYS: no io_uring in this kernel; EPERM: a seccomp filter). Its error
// is the reason storage.Select gives: auto falls back to posix with it, an
// explicit io: uring fails with it. Off Linux the package has only
// Available, which says so, and registers nothing.
//
// # Zero-copy socket sends
//
// ZCSocket is the socket-send facility netzc's uring_zc path
// (io/netzc/uringzc) is built on, so giouring stays inside this package. It
// owns a ring of its own for one socket and submits
// IORING_OP_SENDMSG_ZC requests (up to IOVMax buffers each, the caller's
// memory as it is) or, on a kernel without it, IORING_OP_SEND_ZC of one
// buffer, with MSG_WAITALL and IORING_SEND_ZC_REPORT_USAGE. Reap hands
// back each request's result (bytes or -errno; More says a notification
// follows) and its notification (Copied: IORING_NOTIF_USAGE_ZC_COPIED);
// InFlight counts what is still due, and Close refuses to tear down a ring
// with anything due unless forced. SendZCSupport probes the opcodes once
// per process (IORING_REGISTER_PROBE), after Available.
// ZCSocket.RegisterBuffers registers regions (an arena's extents) with the
// socket's ring; a run of buffers inside one region then goes as one
// SENDMSG_ZC with IORING_RECVSEND_FIXED_BUF and the region's index (newer
// kernels: 6.18 does), or, after RefuseVectoredFixed or without SENDMSG_ZC, a SEND_ZC
// per buffer, fixed where it lies in a region.
//
// # Multishot receive
//
// RecvRing receives on one socket with a multishot IORING_OP_RECV
// (IORING_RECV_MULTISHOT, IOSQE_BUFFER_SELECT) whose bytes land in buffers
// the caller provides through a buffer ring of its own
// (IORING_REGISTER_PBUF_RING, mmapped; the tail published with a release
// store), consumed incrementally where the kernel has IOU_PBUF_RING_INC.
// Wait reports each completion (bytes, buffer id, IORING_CQE_F_BUF_MORE,
// IORING_CQE_F_MORE); a request that ends (no buffer left: -ENOBUFS, the
// end of the stream, an error, a cancel) is armed again by the caller.
// Close refuses while a request is in flight. RecvMultishotSupport probes
// by doing it on a socket pair. io/stream/uringrecv is built on it.
//
// giouring's PrepareSendZC passes the address of the slice header rather
// than of the data, so SEND_ZC is prepared as a SEND with its opcode
// changed.
//
// The loop follows liburing's submit-and-wait pattern and TigerBeetle's
// io_uring loop (queue, submit, reap in batches, never block with work
// unsubmitted).
package uring
