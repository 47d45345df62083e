package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/io/netzc"
)

// Protocols.
const (
	ProtocolZflow = "zflow"
	ProtocolArrow = "arrow"
)

// SendOptions configure a Sender.
type SendOptions struct {
	Protocol string     // zflow (default) or arrow
	Send     netzc.Mode // send path; default auto
	ZeroCopy netzc.Options
	Alloc    memory.Allocator // for the few buffers the IPC writer makes
	// EndTimeout bounds the wait for the receiver's acknowledgement of the
	// end of the stream (zflow); default 30s.
	EndTimeout time.Duration
}

// SendStats count what a Sender sent.
type SendStats struct {
	Batches, Rows int64
	Bytes         int64 // bytes on the wire, framing included
	Net           netzc.Stats
}

// Sender writes record batches to a connection with one of the protocols.
// Write, Close and Abort are called by one goroutine; the zflow protocol
// runs one more, which reads the receiver's frames (credit, the end's
// acknowledgement, an error).
type Sender struct {
	conn   *net.TCPConn
	proto  string
	snd    netzc.Sender
	enc    *encoder
	schema *arrow.Schema
	st     SendStats
	endTO  time.Duration
	closed bool

	// zflow: the receiver's frames, from the reading goroutine.
	mu         sync.Mutex
	credit     int64
	peerErr    error // the receiver's error frame, or the connection's end
	acked      bool
	wake       chan struct{} // a token when credit, ack or peerErr changed
	readerDone chan struct{}
	sent       atomic.Int64  // st.Batches, for the reading goroutine's messages
	peer       *netzc.Reader // the receiver's frames, read outside the netpoller
}

// Dial connects to addr, retrying with exponential back-off (from 10ms,
// doubling, at most 1s apart) until timeout or ctx ends.
func Dial(ctx context.Context, addr string, timeout time.Duration) (*net.TCPConn, error) {
	deadline := time.Now().Add(timeout)
	delay := 10 * time.Millisecond
	var d net.Dialer
	for attempt := 1; ; attempt++ {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			return c.(*net.TCPConn), nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().Add(delay).After(deadline) {
			return nil, fmt.Errorf("stream: connect to %s: %d attempts in %v, the last: %w", addr, attempt, timeout, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

// NewSender starts a stream of batches of schema on conn: it sends the
// schema (with the zflow protocol, after the hello) and, for zflow, waits
// for the receiver's hello and first credit (the receiver checks the
// schema and may refuse it). The Sender owns conn from here on, error or
// not.
func NewSender(ctx context.Context, conn *net.TCPConn, schema *arrow.Schema, opts SendOptions) (*Sender, error) {
	if opts.Protocol == "" {
		opts.Protocol = ProtocolZflow
	}
	if opts.Send == "" {
		opts.Send = netzc.Auto
	}
	if opts.Alloc == nil {
		opts.Alloc = memory.DefaultAllocator
	}
	if opts.EndTimeout <= 0 {
		opts.EndTimeout = 30 * time.Second
	}
	if opts.Protocol != ProtocolZflow && opts.Protocol != ProtocolArrow {
		conn.Close()
		return nil, fmt.Errorf("stream: unknown protocol %q (known: zflow, arrow)", opts.Protocol)
	}
	snd, err := netzc.New(conn, opts.Send, opts.ZeroCopy)
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &Sender{conn: conn, proto: opts.Protocol, snd: snd, schema: schema, endTO: opts.EndTimeout,
		wake: make(chan struct{}, 1)}
	sm, err := schemaMessage(schema)
	if err != nil {
		snd.Close(ctx, true)
		return nil, err
	}
	if s.proto == ProtocolArrow {
		err = s.send([][]byte{sm}, nil)
	} else {
		hello := helloPayload()
		err = s.send([][]byte{frame(FrameHello, 0, len(hello), [CarrierSize]byte{}), hello,
			frame(FrameSchema, 0, len(sm), [CarrierSize]byte{}), sm}, nil)
		if err == nil {
			err = s.handshake(ctx)
		}
	}
	if err != nil {
		s.closeConn(true)
		return nil, err
	}
	s.enc = newEncoder(schema, opts.Alloc)
	return s, nil
}

// handshake reads the receiver's hello (or error) and starts the reader
// of its further frames.
func (s *Sender) handshake(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Now()) })
	defer stop()
	var hdr [HeaderSize]byte
	h, p, err := readFrame(s.conn, hdr[:], 0)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("stream: %s closed the connection during the handshake (is it a zflow tcp_in with protocol: zflow?)", s.conn.RemoteAddr())
		}
		return fmt.Errorf("stream: handshake with %s: %w", s.conn.RemoteAddr(), err)
	}
	switch h.Type {
	case FrameHello:
		if err := checkHello(p); err != nil {
			return err
		}
	case FrameError:
		return fmt.Errorf("stream: the receiver at %s refused the stream: %s", s.conn.RemoteAddr(), p)
	default:
		return fmt.Errorf("%w: handshake: got a %s frame, want hello", ErrFrame, h.Type)
	}
	s.conn.SetReadDeadline(time.Time{})
	pr, err := netzc.NewReader(s.conn)
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	s.peer = pr
	s.readerDone = make(chan struct{})
	go s.readPeer()
	return nil
}

// readPeer reads the receiver's frames until the connection ends.
func (s *Sender) readPeer() {
	defer close(s.readerDone)
	var hdr [HeaderSize]byte
	for {
		h, p, err := readFrame(s.peer, hdr[:], 0)
		s.mu.Lock()
		switch {
		case err != nil:
			if s.peerErr == nil && !s.acked {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
					s.peerErr = fmt.Errorf("stream: the receiver at %s closed the connection after batch %d without an error or an acknowledgement", s.conn.RemoteAddr(), s.sent.Load())
				} else {
					s.peerErr = fmt.Errorf("stream: reading from the receiver at %s: %w", s.conn.RemoteAddr(), err)
				}
			}
		case h.Type == FrameCredit:
			s.credit += int64(h.Seq)
		case h.Type == FrameError:
			s.peerErr = fmt.Errorf("stream: the receiver at %s failed: %s", s.conn.RemoteAddr(), p)
		case h.Type == FrameEndAck:
			s.acked = true
		default:
			s.peerErr = fmt.Errorf("%w: the receiver sent a %s frame", ErrFrame, h.Type)
		}
		done := err != nil || s.peerErr != nil || s.acked
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
		if done {
			return
		}
	}
}

// send sends bufs, counting bytes.
func (s *Sender) send(bufs [][]byte, release func()) error {
	err := s.snd.Send(bufs, release)
	if err == nil {
		s.st.Bytes += int64(total(bufs))
	}
	return err
}

func total(bufs [][]byte) (n int) {
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// waitCredit blocks until the receiver granted a batch, failed, or ctx
// ended: this is where backpressure crosses the wire.
func (s *Sender) waitCredit(ctx context.Context) error {
	for {
		s.mu.Lock()
		credit, perr := s.credit, s.peerErr
		if credit > 0 && perr == nil {
			s.credit--
		}
		s.mu.Unlock()
		if perr != nil {
			return perr
		}
		if credit > 0 {
			return nil
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Write sends rec, whose buffers are held until the kernel is done with
// them (the caller may Release rec on return). carrier is the batch's
// trace context (zero: none); the arrow protocol has no place for it.
func (s *Sender) Write(ctx context.Context, rec arrow.RecordBatch, carrier [CarrierSize]byte) error {
	if s.proto == ProtocolZflow {
		if err := s.waitCredit(ctx); err != nil {
			return err
		}
	}
	rec, made := withSchema(rec, s.schema)
	if made {
		defer rec.Release()
	}
	msgs, release, err := s.enc.encode(rec)
	if err != nil {
		return err
	}
	// A send blocked on a receiver that stopped reading ends when ctx does:
	// the write deadline (the connection's, and the send path's own where
	// it writes outside the netpoller) passes at once. The stream is broken
	// after that; the caller aborts it.
	stop := context.AfterFunc(ctx, func() { _ = netzc.SetWriteDeadline(s.snd, s.conn, time.Now()) })
	defer stop()
	seq := uint64(s.st.Batches + 1)
	for i, m := range msgs {
		var rel func()
		if i == len(msgs)-1 {
			rel = release
		}
		bufs := m.bufs
		if s.proto == ProtocolZflow {
			t, c := FrameDict, [CarrierSize]byte{}
			if m.typ != 2 { // ipc.MessageDictionaryBatch
				t, c = FrameBatch, carrier
			}
			bufs = append([][]byte{frame(t, seq, m.n, c)}, bufs...)
		}
		if err := s.send(bufs, rel); err != nil {
			if rel == nil {
				release()
			}
			if cerr := ctx.Err(); cerr != nil {
				return fmt.Errorf("stream: send batch %d to %s: %w (%v)", s.st.Batches+1, s.conn.RemoteAddr(), cerr, err)
			}
			return s.sendError(err)
		}
	}
	s.st.Batches++
	s.st.Rows += rec.NumRows()
	s.sent.Store(s.st.Batches)
	return nil
}

// sendError prefers the receiver's own error to the socket's (a reset
// that follows the receiver's error frame).
func (s *Sender) sendError(err error) error {
	if s.proto != ProtocolZflow || s.readerDone == nil {
		return fmt.Errorf("stream: send batch %d to %s: %w", s.st.Batches+1, s.conn.RemoteAddr(), err)
	}
	select {
	case <-s.readerDone:
	case <-time.After(time.Second):
	}
	s.mu.Lock()
	perr := s.peerErr
	s.mu.Unlock()
	if perr != nil {
		return perr
	}
	return fmt.Errorf("stream: send batch %d to %s: %w", s.st.Batches+1, s.conn.RemoteAddr(), err)
}

// Close ends the stream cleanly: the end-of-stream (the marker, or the
// zflow end frame with the row count, whose acknowledgement it waits for),
// every zero-copy completion, then the connection.
func (s *Sender) Close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	var err error
	if cerr := s.enc.close(); cerr != nil {
		err = cerr
	}
	if err == nil && s.proto == ProtocolArrow {
		err = s.send([][]byte{eosMarker}, nil)
	}
	if err == nil && s.proto == ProtocolZflow {
		var rows [8]byte
		putU64(rows[:], uint64(s.st.Rows))
		if err = s.send([][]byte{frame(FrameEnd, uint64(s.st.Batches), 8, [CarrierSize]byte{}), rows[:]}, nil); err != nil {
			err = s.sendError(err)
		} else {
			err = s.waitAck(ctx)
		}
	}
	if err == nil {
		err = s.snd.Flush(ctx)
	}
	s.closeConn(err != nil)
	return err
}

func (s *Sender) waitAck(ctx context.Context) error {
	t := time.NewTimer(s.endTO)
	defer t.Stop()
	for {
		s.mu.Lock()
		acked, perr := s.acked, s.peerErr
		s.mu.Unlock()
		if perr != nil {
			return perr
		}
		if acked {
			return nil
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("stream: the receiver at %s did not acknowledge the end of the stream in %v", s.conn.RemoteAddr(), s.endTO)
		}
	}
}

// Abort ends the stream with an error: with zflow the receiver gets an
// error frame carrying cause (when the connection still takes it), then
// the connection is reset. Buffers still in the kernel's hands are
// released after the reset.
func (s *Sender) Abort(cause error) {
	if s.closed {
		return
	}
	if s.proto == ProtocolZflow && cause != nil {
		msg := []byte(cause.Error())
		if len(msg) > maxErrorPayload {
			msg = msg[:maxErrorPayload]
		}
		netzc.SetWriteDeadline(s.snd, s.conn, time.Now().Add(time.Second))
		if s.snd.Send([][]byte{frame(FrameError, 0, len(msg), [CarrierSize]byte{}), msg}, nil) == nil {
			// A reset would drop the frame: end our side in order and give
			// the receiver a moment to read it and hang up.
			_ = s.conn.CloseWrite()
			if s.readerDone != nil {
				select {
				case <-s.readerDone:
				case <-time.After(2 * time.Second):
				}
			}
		}
	}
	if s.enc != nil {
		s.enc.close()
	}
	s.closeConn(true)
}

func (s *Sender) closeConn(abort bool) {
	if s.closed {
		return
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.snd.Close(ctx, abort)
	if s.peer != nil {
		s.peer.Close()
	}
	if s.readerDone != nil {
		<-s.readerDone
	}
}

// Stats returns the counters so far.
func (s *Sender) Stats() SendStats {
	st := s.st
	st.Net = s.snd.Stats()
	return st
}

// Mode and Reason tell the send path in use and why.
func (s *Sender) Mode() netzc.Mode { return s.snd.Mode() }
func (s *Sender) Reason() string   { return s.snd.Reason() }
