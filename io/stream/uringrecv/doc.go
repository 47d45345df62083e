// Package uringrecv is io/stream's uring_multishot receive path: one
// multishot IORING_OP_RECV per connection whose bytes land in buffers of
// the receiving operator's pool, handed to the kernel through a provided
// buffer ring (IORING_REGISTER_PBUF_RING; Linux ≥ 6.0, probed at run time
// by doing it on a socket pair). It registers itself into io/stream in
// init: a binary gets uring_multishot by importing this package, and only
// such a binary links io/uring (giouring needs -ldflags=-checklinkname=0);
// io/stream stays free of the flag.
//
// The receiver parses frames out of the received buffers. Headers and
// message metadata are copied out (a few hundred bytes per message); a
// message body that lies whole in one buffer, 8-byte aligned, is handed to
// arrow-go as a slice of that buffer, so the Arrow arrays point where the
// kernel wrote the bytes. A body that crosses into the next buffer is
// copied into one buffer of the pool (WireStats.SplitBytes, reported to
// the copy ledger with its reason), as is a misaligned one
// (MisalignedBytes).
//
// Where the kernel has IOU_PBUF_RING_INC (Linux ≥ 6.12) the ring's buffers
// are consumed incrementally: the kernel fills a buffer across completions
// before it takes the next, so the stream's bytes lie contiguous in each
// buffer and a body crosses a buffer's end with a probability of about
// body/buffer. Buffers start at 1 MiB and new ones grow to 8 times the
// largest body seen (at most 64 MiB); three are kept in the kernel's
// hands. Without it every completion uses up a buffer (256 KiB, sixteen
// kept), and only bodies that arrive within one completion are referenced.
//
// Each provided buffer is an Arrow buffer with a reference count: the
// kernel (while the buffer is in the ring) or the parser (until it has
// parsed the buffer's last byte) holds one reference, and every body
// sliced from it one more. The count reaching zero hands the buffer back
// to the Wire, which provides it to the kernel again; so a buffer is never
// reused while an Arrow array still points into it. Batches held
// downstream keep their buffers; the Wire makes new ones from the pool
// meanwhile, so a downstream operator that holds its input (a sort) costs
// what it costs on the read path, and never stalls the receive.
//
// Close cancels the multishot request (IORING_OP_ASYNC_CANCEL) and waits
// for its last completion before it tears the ring down; the buffers no
// batch holds go back to the pool then, the others when their batches are
// released. Wire.Interrupt (a cancelled run) ends a blocked receive within
// 20 ms.
package uringrecv
