// Package uringzc is netzc's uring_zc send path: io_uring
// IORING_OP_SENDMSG_ZC (Linux ≥ 6.1; one request per list of up to IOV_MAX
// buffers, straight from the caller's buffers, no staging copy) or, where
// the kernel has only IORING_OP_SEND_ZC (Linux 6.0), one request per
// buffer. It registers itself into netzc in init: a binary gets uring_zc by
// importing this package, and only such a binary links io/uring (giouring,
// which needs -ldflags=-checklinkname=0; the Makefile adds it). netzc
// itself stays free of the flag.
//
// Each request gets a result completion (bytes sent, or -errno) with
// IORING_CQE_F_MORE set, and later a notification (IORING_CQE_F_NOTIF)
// once the kernel no longer reads the memory; the request asks for
// IORING_SEND_ZC_REPORT_USAGE, so the notification's res carries
// IORING_NOTIF_USAGE_ZC_COPIED when the kernel copied after all (always on
// loopback). A list's release runs only after the notifications of all its
// requests arrived, oldest list first, exactly as for msg_zerocopy; copied
// bytes are counted from the notifications the same way (Stats.CopiedBytes
// feeds the copy ledger).
//
// Send submits one request at a time and waits for its result before the
// next (so the stream's bytes stay in order without linked SQEs, and a
// short send is continued from where it stopped); notifications are reaped
// by the sending goroutine (after each send, in Flush and Close, and when
// more than Options.MaxInFlight bytes await them). The connection's write
// deadline does not reach a request in the ring: SetWriteDeadline
// (netzc.WriteDeadliner, callable from another goroutine) bounds sends, a
// request still waiting at the deadline is cancelled with
// IORING_OP_ASYNC_CANCEL and awaited, and Send fails with
// os.ErrDeadlineExceeded (the stream is broken). Close with abort resets
// the connection (SO_LINGER 0), which drops the unsent data and with it
// the kernel's references to the pages, waits for the notifications that
// follow, and only then releases the buffers and tears down the ring: no
// request is left in flight.
//
// With Options.Registered (an arena's extents) the ring registers them as
// fixed buffers, and runs of buffers in one registered region go as one
// SENDMSG_ZC with IORING_RECVSEND_FIXED_BUF (newer kernels: 6.18 does), the rest as
// plain requests; a kernel that refuses (-EINVAL, nothing sent) makes the
// Sender resubmit, and go on for the stream, with SEND_ZC per buffer,
// fixed where the buffer lies in a region.
//
// The ring is probed at run time (uring.SendZCSupport): without SEND_ZC,
// netzc.UringZCSupport says why and an explicit uring_zc fails with it;
// auto never picks uring_zc.
package uringzc
