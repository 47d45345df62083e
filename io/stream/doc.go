// Package stream carries Arrow record batches between processes over TCP,
// in one of two protocols (the wire format, with byte layouts, is
// docs/stream.md):
//
//   - arrow: a plain Arrow IPC stream (the Arrow columnar format's
//     "IPC streaming format": schema message, dictionary and record batch
//     messages, end-of-stream marker). Any Arrow implementation's stream
//     reader or writer is a peer.
//   - zflow: the same IPC messages, each in a frame with a 56-byte header
//     (type, sequence number, length, the 26-byte trace carrier), after a
//     hello in both directions; the receiver grants credit in batches and
//     the sender waits when it has none (backpressure crosses the wire);
//     the end frame carries the batch and row counts, which the receiver
//     checks and acknowledges; either side's failure travels as an error
//     frame.
//
// Sending never serialises a batch into a staging buffer: arrow-go's
// ipc.Writer produces each message's metadata and body buffers (the
// arrays' own buffers) through a PayloadWriter, and the Sender hands the
// list of slices — header, body buffers, a shared zero pad — to a
// netzc.Sender (writev, MSG_ZEROCOPY or io_uring SENDMSG_ZC, the latter
// two with release on completion). The batch is held until its last
// message's send completed. When Write's context ends during a send (a
// receiver that stopped reading), the send's write deadline passes at once
// (netzc.SetWriteDeadline, which reaches uring_zc too) and Write fails
// with the context's error; the caller aborts the stream.
//
// Receiving reads each message's metadata into a small heap buffer, checks
// its flatbuffer (arrow-go trusts vector lengths and buffer offsets it
// finds there), then takes the body from the Wire: read(2) straight into
// a buffer of the caller's allocator (RecvRead), or — RecvUringMultishot,
// registered by io/stream/uringrecv (RegisterUringWire) so this package
// stays free of io_uring — a slice of the provided buffer an io_uring
// multishot receive put it in; arrow-go builds the arrays over the body
// without a second copy (ipc.NewMessage over a MessageReader of ours).
// A connection that ends before the end of the stream is an error naming
// the last batch received ("closed after batch 17 of a stream that did not
// end"), never a short result.
package stream
