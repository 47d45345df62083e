// Package netzc sends scatter-gather lists of buffers on a TCP socket with
// one of three send paths, and tells its caller when each list's memory is
// free again:
//
//   - copy: writev(2) of the caller's buffers as they are (no staging
//     buffer); the kernel copies them into socket buffers before the call
//     returns, so the release callback runs at once. Every byte is counted
//     as copied by the kernel.
//   - msg_zerocopy: SO_ZEROCOPY and sendmsg(2) with MSG_ZEROCOPY (Linux ≥
//     4.14, see the kernel's Documentation/networking/msg_zerocopy.rst).
//     The kernel pins the pages and sends from them; each successful
//     sendmsg gets the next 32-bit notification id, and the kernel reports
//     ranges of finished ids on the socket's error queue
//     (recvmsg(MSG_ERRQUEUE), a sock_extended_err with origin
//     SO_EE_ORIGIN_ZEROCOPY). A list's release callback runs only once the
//     ids of all its sendmsg calls are reported: before that the kernel may
//     still read the memory. A notification with SO_EE_CODE_ZEROCOPY_COPIED
//     says the kernel copied after all (always, on loopback); its bytes are
//     counted as copied, not as zero-copy.
//   - uring_zc: io_uring IORING_OP_SENDMSG_ZC (IORING_OP_SEND_ZC per buffer
//     where the kernel lacks it), implemented in io/netzc/uringzc, which
//     registers itself here (RegisterUringZC) when a binary imports it:
//     io_uring comes through io/uring and giouring, which need
//     -ldflags=-checklinkname=0, and netzc stays free of that. Each
//     request's notification CQE releases like an error-queue completion
//     above, and its IORING_NOTIF_USAGE_ZC_COPIED flag counts the bytes as
//     copied. Without the package, or where the kernel has no SEND_ZC or
//     refuses io_uring, asking for uring_zc fails with UringZCSupport's
//     reason.
//
// A Sender that writes outside Go's netpoller (uring_zc) implements
// WriteDeadliner, since the connection's write deadline cannot reach it;
// SetWriteDeadline sets both, and io/stream uses it to end a send blocked
// on a stalled receiver when the run's context ends.
//
// auto uses msg_zerocopy for lists of at least Options.Threshold bytes when
// the socket accepts SO_ZEROCOPY, and copy otherwise; Reason says why. When
// the kernel flags each of the first 8 zero-copy completions as copied (the
// peer is on this host: loopback, a veth pair), auto sends by copy from then
// on and adds that to Reason — the use of SO_EE_CODE_ZEROCOPY_COPIED the
// kernel's MSG_ZEROCOPY documentation suggests: zero copy there only adds
// pinning and completions to the copy (make bench-net). It
// never picks uring_zc: on loopback (where the copy ledger can be checked)
// both zero-copy paths lose to writev, and no NIC measurement says
// uring_zc wins yet.
// Pinning pages and reading the error queue cost more than copying a small
// message, hence the threshold (64 KiB by default, where zero-copy stops
// losing to writev in the kernel's own measurements).
//
// Completions are reaped by the sending goroutine itself (after each send,
// and while waiting in Flush or when more than Options.MaxInFlight bytes
// await completion): the error queue is read with recvmsg(MSG_DONTWAIT)
// and waited on with poll(2), outside Go's netpoller, so another goroutine
// may read the connection's data at the same time.
//
// On platforms other than Linux only copy exists.
package netzc
