package pdu

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Limits bound what a Conn accepts before it reads a PDU's data, so a peer
// cannot make it allocate or read more than was negotiated. Zero means no
// data of that kind is accepted.
type Limits struct {
	MaxInCapsule uint32 // data in one CapsuleCmd (the target's side)
	MaxH2CData   uint32 // data in one H2CData: the MAXH2CDATA the target granted
	MaxC2HData   uint32 // data in one C2HData (the host's side)
}

// maxHeaderRegion is the most a PDU holds before its data: pdo is one byte,
// and a TermReq's copied header ends at 24 + 128.
const maxHeaderRegion = 256

// readBufSize is the read buffer in front of the socket. Data PDUs' payloads
// larger than what is buffered are read straight into the caller's buffer;
// bytes that were already buffered are copied once from here.
const readBufSize = 16 << 10

// Conn frames NVMe/TCP PDUs over a stream. One goroutine reads (ReadHeader
// then ReadData, or ReadPDU); any number may Write. Recv are the options
// of PDUs this side receives (its own PDA, the digests negotiated), Send
// those of PDUs it sends (the peer's PDA); both are zero until the ICReq /
// ICResp exchange sets them, and must not change while PDUs move.
type Conn struct {
	Recv, Send Options
	Limits     Limits

	nc  net.Conn
	r   *bufio.Reader
	hdr [maxHeaderRegion]byte
	got int // bytes of the current header region read into hdr
	// pending is the header whose data ReadHeader left for ReadData.
	pending    Header
	hasPending bool
	data       []byte // ReadPDU's payload buffer, reused

	// Output: PDUs are queued in out (under wmu) and sent by Flush, one
	// flush at a time (fmu), which swaps out for spare so more PDUs can be
	// queued while it writes.
	fmu        sync.Mutex
	wmu        sync.Mutex
	out, spare outBuf
}

// outBuf is queued output: the header regions and data digests of the
// PDUs in hdr, and in pend what goes out in order — a span of hdr, or a
// caller's data.
type outBuf struct {
	hdr  []byte
	pend []piece
	data int // bytes of caller data
	vec  [][]byte
}

// piece is one part of the queued output: hdr[lo:hi], or data when set.
type piece struct {
	lo, hi int
	data   []byte
}

func (o *outBuf) add(p PDU, opt Options) {
	lo := len(o.hdr)
	var h Header
	o.hdr, h = AppendHeader(o.hdr, p, opt)
	o.pend = append(o.pend, piece{lo: lo, hi: len(o.hdr)})
	if data := p.payload(); len(data) > 0 && (h.PDO != 0 || h.Type == TypeH2CTermReq || h.Type == TypeC2HTermReq) {
		o.pend = append(o.pend, piece{data: data})
		o.data += len(data)
		if h.Flags&FlagDDGST != 0 {
			lo := len(o.hdr)
			o.hdr = binary.LittleEndian.AppendUint32(o.hdr, CRC32C(data))
			o.pend = append(o.pend, piece{lo: lo, hi: len(o.hdr)})
		}
	}
}

// send writes o in one vectored write and empties it.
func (o *outBuf) send(w io.Writer) error {
	if len(o.pend) == 0 {
		return nil
	}
	vec := o.vec[:0]
	for _, pc := range o.pend {
		if pc.data != nil {
			vec = append(vec, pc.data)
		} else {
			vec = append(vec, o.hdr[pc.lo:pc.hi])
		}
	}
	bufs := net.Buffers(vec) // WriteTo consumes bufs, not vec
	_, err := bufs.WriteTo(w)
	clear(o.pend) // drop the references to the callers' data
	clear(vec)
	o.vec, o.pend, o.hdr, o.data = vec[:0], o.pend[:0], o.hdr[:0], 0
	return err
}

// NewConn frames PDUs over nc; the Conn owns nc from here on.
func NewConn(nc net.Conn) *Conn {
	return &Conn{nc: nc, r: bufio.NewReaderSize(nc, readBufSize)}
}

// NetConn is the connection underneath (for deadlines and addresses).
func (c *Conn) NetConn() net.Conn { return c.nc }

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// ReadHeader reads the next PDU up to its data and returns its common header
// and its typed fields; a PDU with data comes back without it, and the
// caller must then call ReadData (or Discard) before the next ReadHeader.
// A TermReq comes back whole. The common header is checked (ParseHeader),
// data beyond Limits is refused before any of it is read (FES 5), and the
// header digest is verified. io.EOF means the peer closed the connection
// between PDUs.
func (c *Conn) ReadHeader() (Header, PDU, error) {
	if c.hasPending {
		return Header{}, nil, fmt.Errorf("pdu: read header: the data of the previous %s was not read", c.pending.Type)
	}
	b := c.hdr[:]
	c.got = 0
	if _, err := io.ReadFull(c.r, b[:CommonHeaderSize]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Header{}, nil, &Error{Field: "common header", Msg: "stream ended inside the 8-byte common header"}
		}
		return Header{}, nil, err
	}
	c.got = CommonHeaderSize
	h, err := ParseHeader(b, c.Recv)
	if err != nil {
		return h, nil, err
	}
	if err := c.checkLimit(h); err != nil {
		return h, nil, err
	}
	end := h.DataOffset()
	isTerm := h.Type == TypeH2CTermReq || h.Type == TypeC2HTermReq
	if isTerm {
		end = int(h.PLen)
	}
	if _, err := io.ReadFull(c.r, b[CommonHeaderSize:end]); err != nil {
		return h, nil, c.short(h, err)
	}
	c.got = end
	if err := CheckHeaderDigest(h, b[:end]); err != nil {
		return h, nil, err
	}
	p, err := DecodeHeader(h, b[:end])
	if err != nil {
		return h, nil, err
	}
	if isTerm {
		attachData(p, b[h.HLen:end])
	} else if h.DataLen() > 0 {
		c.pending, c.hasPending = h, true
	}
	return h, p, nil
}

// checkLimit refuses data larger than negotiated.
func (c *Conn) checkLimit(h Header) error {
	n := h.DataLen()
	if n <= 0 {
		return nil
	}
	var max uint32
	switch h.Type {
	case TypeCapsuleCmd:
		max = c.Limits.MaxInCapsule
	case TypeH2CData:
		max = c.Limits.MaxH2CData
	case TypeC2HData:
		max = c.Limits.MaxC2HData
	default:
		return nil
	}
	if uint64(n) > uint64(max) {
		return &Error{PDU: h.Type, Field: "plen", Offset: OffPLen, FES: FESDataLimitExceeded, FEI: OffPLen,
			Msg: fmt.Sprintf("%d bytes of data, at most %d accepted", n, max)}
	}
	return nil
}

func (c *Conn) short(h Header, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{PDU: h.Type, Field: "plen", Offset: OffPLen, Msg: fmt.Sprintf("stream ended inside a PDU of %d bytes", h.PLen)}
	}
	return fmt.Errorf("pdu: read %s: %w", h.Type, err)
}

// ReadData reads the data of the PDU ReadHeader just returned into dst,
// which must be exactly h.DataLen() bytes, and checks its data digest. The
// bytes go from the socket into dst, except what the read buffer already
// held.
func (c *Conn) ReadData(dst []byte) error {
	if !c.hasPending {
		return errors.New("pdu: read data: no PDU data is pending")
	}
	h := c.pending
	if len(dst) != h.DataLen() {
		return fmt.Errorf("pdu: read %s data: buffer of %d bytes for %d bytes of data", h.Type, len(dst), h.DataLen())
	}
	c.hasPending = false
	if _, err := io.ReadFull(c.r, dst); err != nil {
		return c.short(h, err)
	}
	if h.Flags&FlagDDGST == 0 {
		return nil
	}
	sum := c.hdr[:DigestSize]
	if _, err := io.ReadFull(c.r, sum); err != nil {
		return c.short(h, err)
	}
	return CheckDataDigest(h, CRC32C(dst), sum)
}

// Discard skips the pending data of the PDU ReadHeader returned, checking
// its digest.
func (c *Conn) Discard() error {
	if !c.hasPending {
		return nil
	}
	return c.ReadData(c.scratch(c.pending.DataLen()))
}

func (c *Conn) scratch(n int) []byte {
	if cap(c.data) < n {
		c.data = make([]byte, n)
	}
	return c.data[:n]
}

// ReadPDU reads a whole PDU. Its data lands in a buffer the Conn reuses:
// it is valid until the next read.
func (c *Conn) ReadPDU() (PDU, error) {
	h, p, err := c.ReadHeader()
	if err != nil || !c.hasPending {
		return p, err
	}
	buf := c.scratch(h.DataLen())
	if err := c.ReadData(buf); err != nil {
		return nil, err
	}
	attachData(p, buf)
	return p, nil
}

// Write sends p, after whatever Queue left to send: its header, header
// digest and padding from a buffer the Conn keeps, then its data from
// where the caller holds it, then the data digest, in one vectored write.
// The data is not copied. Safe for concurrent use; each PDU goes out
// whole.
func (c *Conn) Write(p PDU) error {
	c.Queue(p)
	return c.Flush()
}

// Queue adds p to what the next Flush (or Write) sends, so several PDUs go
// out in one system call. p's data is not copied: the caller must leave it
// unchanged until then. Safe for concurrent use.
func (c *Conn) Queue(p PDU) {
	c.wmu.Lock()
	c.out.add(p, c.Send)
	c.wmu.Unlock()
}

// Flush sends what was queued, in one vectored write; PDUs queued while it
// writes wait for the next Flush. Flushes run one at a time, in order.
func (c *Conn) Flush() error {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	c.wmu.Lock()
	c.out, c.spare = c.spare, c.out
	c.wmu.Unlock()
	if err := c.spare.send(c.nc); err != nil {
		return fmt.Errorf("pdu: write: %w", err)
	}
	return nil
}

// QueuedData is the bytes of PDU data queued and not yet sent.
func (c *Conn) QueuedData() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.out.data
}

// WholePDUBuffered reports whether the read buffer already holds the
// next PDU entirely, so reading it will not wait for the peer. A sender
// that queues its answers flushes them before a read that would wait.
func (c *Conn) WholePDUBuffered() bool {
	n := c.r.Buffered()
	if n < CommonHeaderSize {
		return false
	}
	b, _ := c.r.Peek(CommonHeaderSize)
	return uint64(binary.LittleEndian.Uint32(b[4:8])) <= uint64(n)
}

// Terminate answers a fatal PDU error with a TermReq (dir TypeC2HTermReq on
// a controller, TypeH2CTermReq on a host) carrying the error's FES and FEI
// and the offending header, when the error calls for one (FES ≠ 0), then
// closes the connection. It returns the error it was given.
func (c *Conn) Terminate(dir Type, err error) error {
	var pe *Error
	if errors.As(err, &pe) && pe.FES != 0 {
		n := min(c.got, MaxTermReqData)
		if h := HLen(pe.PDU); h != 0 && h < n {
			n = h
		}
		_ = c.Write(&TermReq{Dir: dir, FES: pe.FES, FEI: pe.FEI, Data: c.hdr[:n]})
	}
	c.nc.Close()
	return err
}
