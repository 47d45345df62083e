package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// RecvOptions configure a Receiver.
type RecvOptions struct {
	Protocol string           // zflow (default) or arrow
	Alloc    memory.Allocator // message bodies are read into its buffers
	// Recv is the receive path once batches flow (the handshake and the
	// schema are always read with read(2)): read (the default), or
	// uring_multishot where linked and supported. auto is read: see
	// docs/stream.md for the measurement behind it.
	Recv RecvMode
	// Wire tunes the uring_multishot path.
	Wire WireOptions
	// Credit is how many batches the sender may have in flight (zflow);
	// default 4.
	Credit int
	// MaxMessage bounds one IPC message; default 1 GiB.
	MaxMessage int64
}

// RecvStats count what a Receiver read.
type RecvStats struct {
	Batches, Rows int64
	Bytes         int64 // bytes read from the connection
	Wire          WireStats
}

// Receiver reads record batches from one connection. Its methods are
// called by one goroutine.
type Receiver struct {
	conn   net.Conn
	proto  string
	cr     *readWire // the handshake, and every byte on the read path
	w      Wire      // where bytes come from now: cr, or the uring_multishot wire after Start
	recv   RecvMode  // asked for; resolved by Start
	wopts  WireOptions
	why    string
	rdr    *ipc.Reader
	fm     *frameMsgReader // zflow
	mr     ipc.MessageReader
	st     RecvStats
	credit int
	ended  bool
	wst    WireStats // the uring wire's, once closed
	mem    memory.Allocator
	mode   RecvMode // in use after Start
}

// Accept waits up to timeout (0: no limit) for one connection on ln.
func Accept(ctx context.Context, ln *net.TCPListener, timeout time.Duration) (*net.TCPConn, error) {
	if timeout > 0 {
		ln.SetDeadline(time.Now().Add(timeout))
	}
	stop := context.AfterFunc(ctx, func() { ln.SetDeadline(time.Now()) })
	defer stop()
	c, err := ln.AcceptTCP()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("stream: no sender connected to %s in %v", ln.Addr(), timeout)
		}
		return nil, fmt.Errorf("stream: accept on %s: %w", ln.Addr(), err)
	}
	return c, nil
}

// NewReceiver reads the start of a stream on conn (the zflow hello and
// schema, or the Arrow schema message) and returns a Receiver whose Schema
// is the stream's. Batches flow (zflow: credit is granted) only after
// Start; Refuse sends the sender an error instead. The Receiver owns conn.
func NewReceiver(ctx context.Context, conn net.Conn, opts RecvOptions) (*Receiver, error) {
	if opts.Protocol == "" {
		opts.Protocol = ProtocolZflow
	}
	if opts.Alloc == nil {
		opts.Alloc = memory.DefaultAllocator
	}
	if opts.Credit <= 0 {
		opts.Credit = 4
	}
	if opts.MaxMessage <= 0 {
		opts.MaxMessage = 1 << 30
	}
	if opts.Recv == "" {
		opts.Recv = RecvRead
	}
	r := &Receiver{conn: conn, proto: opts.Protocol, cr: &readWire{r: conn}, credit: opts.Credit, recv: opts.Recv, wopts: opts.Wire}
	r.w = r.cr
	r.mem = opts.Alloc
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	var mr ipc.MessageReader
	switch opts.Protocol {
	case ProtocolArrow:
		mr = &plainMsgReader{r: r, mem: opts.Alloc, max: opts.MaxMessage}
	case ProtocolZflow:
		var hdr [HeaderSize]byte
		h, p, err := readFrame(r.cr, hdr[:], uint64(opts.MaxMessage))
		if err == nil && h.Type != FrameHello {
			err = fmt.Errorf("%w: the stream starts with a %s frame, want hello", ErrFrame, h.Type)
		}
		if err == nil {
			err = checkHello(p)
		}
		if err != nil {
			conn.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("stream: the sender at %s closed the connection before its hello", conn.RemoteAddr())
			}
			return nil, fmt.Errorf("stream: handshake with %s: %w", conn.RemoteAddr(), err)
		}
		r.fm = &frameMsgReader{r: r, mem: opts.Alloc, max: uint64(opts.MaxMessage)}
		mr = r.fm
	default:
		conn.Close()
		return nil, fmt.Errorf("stream: unknown protocol %q (known: zflow, arrow)", opts.Protocol)
	}
	rdr, err := ipc.NewReaderFromMessageReader(mr, ipc.WithAllocator(opts.Alloc))
	if err != nil {
		mr.Release()
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("stream: read the schema from %s: %w", conn.RemoteAddr(), r.cutError(err))
	}
	r.rdr, r.mr = rdr, mr
	return r, nil
}

// SetAlloc changes the allocator message bodies are read into, for a
// Receiver made before its run (the schema read at compile time).
func (r *Receiver) SetAlloc(mem memory.Allocator) {
	r.mem = mem
	if r.fm != nil {
		r.fm.mem = mem
	}
	if pm, ok := r.mr.(*plainMsgReader); ok {
		pm.mem = mem
	}
}

// Schema is the stream's schema.
func (r *Receiver) Schema() *arrow.Schema { return r.rdr.Schema() }

// Start switches to the receive path asked for and lets batches flow:
// zflow grants the first credit (and says hello). uring_multishot takes its
// buffers from the allocator the Receiver has now (SetAlloc).
func (r *Receiver) Start() error {
	if err := r.startWire(); err != nil {
		return err
	}
	if r.proto != ProtocolZflow {
		return nil
	}
	hello := helloPayload()
	return r.write(frame(FrameHello, 0, len(hello), [CarrierSize]byte{}), hello,
		frame(FrameCredit, uint64(r.credit), 0, [CarrierSize]byte{}))
}

func (r *Receiver) write(bufs ...[]byte) error {
	nb := net.Buffers(bufs)
	if _, err := nb.WriteTo(r.conn); err != nil {
		return fmt.Errorf("stream: connection from %s closed after batch %d of a stream that did not end (write: %w)", r.conn.RemoteAddr(), r.st.Batches, err)
	}
	return nil
}

// Next returns the next batch, which the caller owns, with its trace
// carrier (zero with the arrow protocol); io.EOF after a clean end of
// stream. ctx ending interrupts a blocked read.
func (r *Receiver) Next(ctx context.Context) (arrow.RecordBatch, [CarrierSize]byte, error) {
	var carrier [CarrierSize]byte
	if r.ended {
		return nil, carrier, io.EOF
	}
	w := r.w
	stop := context.AfterFunc(ctx, func() {
		r.conn.SetReadDeadline(time.Now())
		w.Interrupt()
	})
	defer stop()
	ok, err := safeNext(r.rdr)
	if !ok {
		if err == nil {
			err = r.rdr.Err()
		}
		if ctx.Err() != nil {
			return nil, carrier, ctx.Err()
		}
		if err == nil && r.proto == ProtocolArrow && r.w.EOF() {
			err = io.ErrUnexpectedEOF // the connection ended without the end-of-stream marker
		}
		if err != nil {
			return nil, carrier, r.cutError(err)
		}
		if r.proto == ProtocolZflow {
			if err := r.fm.checkEnd(); err != nil {
				return nil, carrier, err
			}
		}
		r.ended = true
		return nil, carrier, io.EOF
	}
	rec := r.rdr.RecordBatch()
	rec.Retain()
	r.st.Batches++
	r.st.Rows += rec.NumRows()
	if r.fm != nil {
		carrier = r.fm.carrier
	}
	return rec, carrier, nil
}

// cutError names a connection that ended mid-stream as such.
func (r *Receiver) cutError(err error) error {
	if r.fm != nil && r.fm.peerErr != nil {
		return r.fm.peerErr
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
		return fmt.Errorf("stream: connection from %s closed after batch %d of a stream that did not end", r.conn.RemoteAddr(), r.st.Batches)
	}
	return fmt.Errorf("stream: batch %d from %s: %w", r.st.Batches+1, r.conn.RemoteAddr(), err)
}

// Done says the caller has passed on a batch: zflow grants one more.
func (r *Receiver) Done() error {
	if r.proto != ProtocolZflow {
		return nil
	}
	return r.write(frame(FrameCredit, 1, 0, [CarrierSize]byte{}))
}

// Fail sends the sender an error frame with cause (zflow) and closes.
func (r *Receiver) Fail(cause error) {
	if r.proto == ProtocolZflow && cause != nil {
		msg := []byte(cause.Error())
		if len(msg) > maxErrorPayload {
			msg = msg[:maxErrorPayload]
		}
		r.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = r.write(frame(FrameError, 0, len(msg), [CarrierSize]byte{}), msg)
	}
	r.Close()
}

// Close releases the reader, stops the receive path (no request is left
// in flight) and closes the connection. Batches already returned keep
// their buffers; those go back to the allocator when released.
func (r *Receiver) Close() error {
	if r.rdr != nil {
		r.rdr.Release()
		r.rdr = nil
	}
	var werr error
	if r.w != r.cr {
		r.wst = r.w.Stats()
		werr = r.w.Close()
		r.w = r.cr
	}
	if err := r.conn.Close(); werr == nil {
		werr = err
	}
	return werr
}

// Stats returns the counters so far.
func (r *Receiver) Stats() RecvStats {
	st := r.st
	st.Wire = r.WireStats()
	st.Bytes = st.Wire.Bytes
	return st
}

// WireStats are the receive path's counters, the handshake's bytes
// included.
func (r *Receiver) WireStats() WireStats {
	st := r.wst
	if r.w != r.cr {
		st = r.w.Stats()
	}
	rs := r.cr.Stats()
	st.Bytes += rs.Bytes
	st.Bodies += rs.Bodies
	st.BodyBytes += rs.BodyBytes
	return st
}

// frameMsgReader is the ipc.MessageReader of the zflow protocol: one IPC
// message per schema, dict or batch frame, read by arrow-go's message
// reader bounded to the frame, so a message cannot run into the next frame
// and a body cannot claim more than its frame holds.
type frameMsgReader struct {
	r       *Receiver
	mem     memory.Allocator
	max     uint64
	msg     *ipc.Message // the current message, released by the next
	lim     limitWire
	hdr     [HeaderSize]byte
	seq     uint64 // the last batch frame's sequence number
	carrier [CarrierSize]byte
	end     *Header
	endRows uint64
	peerErr error
	refs    int
}

func (m *frameMsgReader) Retain() { m.refs++ }
func (m *frameMsgReader) Release() {
	if m.msg != nil {
		m.msg.Release()
		m.msg = nil
	}
}

func (m *frameMsgReader) Message() (*ipc.Message, error) {
	m.Release() // the previous message, as arrow-go's reader does
	h, p, err := readFrame(m.r.w, m.hdr[:], m.max)
	if err != nil {
		if errors.Is(err, ErrFrame) {
			return nil, err
		}
		return nil, noEOF(err)
	}
	switch h.Type {
	case FrameEnd:
		m.end, m.endRows = &h, binary.LittleEndian.Uint64(p)
		return nil, io.EOF
	case FrameError:
		m.peerErr = fmt.Errorf("stream: the sender at %s failed: %s", m.r.conn.RemoteAddr(), p)
		return nil, m.peerErr
	case FrameSchema:
		if m.seq != 0 || m.r.rdr != nil {
			return nil, fmt.Errorf("%w: a schema frame after the stream started", ErrFrame)
		}
	case FrameDict, FrameBatch:
		if m.r.rdr == nil {
			return nil, fmt.Errorf("%w: a %s frame before the schema", ErrFrame, h.Type)
		}
		if h.Seq != m.seq+1 {
			return nil, fmt.Errorf("%w: %s frame with sequence number %d after batch %d", ErrFrame, h.Type, h.Seq, m.seq)
		}
		if h.Type == FrameBatch {
			m.seq, m.carrier = h.Seq, h.Carrier
		}
	default:
		return nil, fmt.Errorf("%w: the sender sent a %s frame", ErrFrame, h.Type)
	}
	m.lim = limitWire{w: m.r.w, n: int64(h.Length)}
	msg, err := readMessage(&m.lim, m.mem, int64(h.Length))
	m.msg = msg
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s frame %d holds an end-of-stream marker, not a message", ErrFrame, h.Type, h.Seq)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) && m.lim.n > 0 {
			return nil, io.ErrUnexpectedEOF // the connection ended inside the frame
		}
		if isReset(err) || errors.Is(err, net.ErrClosed) {
			return nil, err // the connection was reset inside the frame: cut, not malformed
		}
		if m.lim.n == 0 && errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %s frame %d: the IPC message runs past the frame's %d bytes", ErrFrame, h.Type, h.Seq, h.Length)
		}
		return nil, fmt.Errorf("%w: %s frame %d: %v", ErrFrame, h.Type, h.Seq, err)
	}
	if m.lim.n != 0 {
		return nil, fmt.Errorf("%w: %s frame %d: %d bytes left after its IPC message", ErrFrame, h.Type, h.Seq, m.lim.n)
	}
	want := map[FrameType]ipc.MessageType{FrameSchema: ipc.MessageSchema, FrameDict: ipc.MessageDictionaryBatch, FrameBatch: ipc.MessageRecordBatch}[h.Type]
	if msg.Type() != want {
		return nil, fmt.Errorf("%w: %s frame %d holds an IPC %v message", ErrFrame, h.Type, h.Seq, msg.Type())
	}
	return msg, nil
}

// checkEnd checks the sender's end frame against what arrived and
// acknowledges it, or sends the mismatch back as an error.
func (m *frameMsgReader) checkEnd() error {
	if m.end == nil {
		return fmt.Errorf("stream: connection from %s closed after batch %d of a stream that did not end", m.r.conn.RemoteAddr(), m.r.st.Batches)
	}
	var err error
	switch {
	case m.end.Seq != uint64(m.r.st.Batches):
		err = fmt.Errorf("stream: the sender at %s ended after %d batches, %d arrived", m.r.conn.RemoteAddr(), m.end.Seq, m.r.st.Batches)
	case m.endRows != uint64(m.r.st.Rows):
		err = fmt.Errorf("stream: the sender at %s ended after %d rows, %d arrived", m.r.conn.RemoteAddr(), m.endRows, m.r.st.Rows)
	}
	if err != nil {
		m.r.Fail(err)
		return err
	}
	var rows [8]byte
	putU64(rows[:], m.endRows)
	return m.r.write(frame(FrameEndAck, m.end.Seq, 8, [CarrierSize]byte{}), rows[:])
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// safeNext is rdr.Next with a panic of arrow-go's reader on malformed input
// turned into an error.
func safeNext(rdr *ipc.Reader) (ok bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			ok, err = false, fmt.Errorf("malformed IPC message: %v", p)
		}
	}()
	return rdr.Next(), nil
}

// bodyReader is a Wire, or one bounded to a frame.
type bodyReader interface {
	io.Reader
	Body(n int, mem memory.Allocator) (*memory.Buffer, error)
}

// readMessage reads one IPC message from r, its metadata checked first
// (checkMeta), its body taken from the wire: read into a buffer of mem, or
// referenced where the wire received it. The caller owns the message.
func readMessage(r bodyReader, mem memory.Allocator, maxBody int64) (*ipc.Message, error) {
	meta, _, body, err := readMeta(r, maxBody)
	if err != nil {
		return nil, err
	}
	if body > int64(^uint(0)>>1) {
		return nil, fmt.Errorf("a message body of %d bytes", body)
	}
	b, err := r.Body(int(body), mem)
	if err != nil {
		return nil, noEOF(err)
	}
	head := 4
	if binary.LittleEndian.Uint32(meta) == 0xffffffff {
		head = 8
	}
	msg := ipc.NewMessage(memory.NewBufferBytes(meta[head:]), b)
	b.Release() // the message holds it
	return msg, nil
}

// plainMsgReader is the ipc.MessageReader of the arrow protocol: one
// message at a time, each message's metadata checked first.
type plainMsgReader struct {
	r   *Receiver
	mem memory.Allocator
	max int64
	msg *ipc.Message
}

func (m *plainMsgReader) Retain() {}
func (m *plainMsgReader) Release() {
	if m.msg != nil {
		m.msg.Release()
		m.msg = nil
	}
}

func (m *plainMsgReader) Message() (*ipc.Message, error) {
	m.Release() // the previous message, as arrow-go's reader does
	msg, err := readMessage(m.r.w, m.mem, m.max)
	m.msg = msg
	return msg, err
}
