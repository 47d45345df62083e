//go:build linux

package rdma

import (
	"encoding/binary"
	"fmt"
	"io"
)

// The control channel: a TCP connection beside the queue pair's, over
// which the two ends exchange what one-sided access needs (the receive
// region's key, size and handle, the queue pair's address), credit, the
// end of the stream and errors. A frame is 8 bytes — type, three zero
// bytes, payload length u32 little-endian — and the payload.

type ctlType uint8

const (
	ctlHello  ctlType = 1 // both ways, first: magic, version
	ctlSchema ctlType = 2 // sender: the IPC schema message
	ctlSetup  ctlType = 3 // receiver: region key, size, handle, QP port, receives posted
	ctlMode   ctlType = 4 // sender: how it reaches the region (1 mapped, 0 over the QP's connection) and why
	ctlCredit ctlType = 5 // receiver: the ring position the sender may write up to, receives posted so far
	ctlEnd    ctlType = 6 // sender: batches and rows sent
	ctlEndAck ctlType = 7 // receiver: batches and rows checked
	ctlError  ctlType = 8 // either: the reason (UTF-8)
	ctlVerbs  ctlType = 9 // both, real verbs only: the QP's number, PSN, LID and GID
)

var ctlNames = [...]string{"", "hello", "schema", "setup", "mode", "credit", "end", "end_ack", "error", "verbs"}

func (t ctlType) String() string {
	if int(t) < len(ctlNames) && t != 0 {
		return ctlNames[t]
	}
	return fmt.Sprintf("frame type %d", uint8(t))
}

const (
	ctlHeader   = 8
	ctlMagic    = "ZFLOWRDM"
	ctlVersion  = 1
	helloLen    = 16
	setupLen    = 64
	creditLen   = 16
	endLen      = 16
	verbsLen    = 32
	maxCtlError = 64 << 10
	maxSchema   = 16 << 20
)

// ctlLimit is the largest payload a frame of type t may have.
func ctlLimit(t ctlType) (lo, hi int) {
	switch t {
	case ctlHello:
		return helloLen, helloLen
	case ctlSchema:
		return 8, maxSchema
	case ctlSetup:
		return setupLen, setupLen
	case ctlMode:
		return 1, 1 + 4096
	case ctlCredit:
		return creditLen, creditLen
	case ctlEnd, ctlEndAck:
		return endLen, endLen
	case ctlError:
		return 0, maxCtlError
	case ctlVerbs:
		return verbsLen, verbsLen
	}
	return -1, -1
}

func putCtl(t ctlType, payload []byte) []byte {
	b := make([]byte, ctlHeader+len(payload))
	b[0] = byte(t)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(payload)))
	copy(b[ctlHeader:], payload)
	return b
}

// readCtl reads one control frame; a malformed one is an error naming
// the field, never a panic or an allocation the header alone asks for.
func readCtl(r io.Reader) (ctlType, []byte, error) {
	var h [ctlHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	t := ctlType(h[0])
	lo, hi := ctlLimit(t)
	if lo < 0 {
		return 0, nil, fmt.Errorf("rdma: control frame: unknown type %d at byte 0", h[0])
	}
	if h[1] != 0 || h[2] != 0 || h[3] != 0 {
		return 0, nil, fmt.Errorf("rdma: control %s frame: reserved bytes 1–3 not zero", t)
	}
	n := int64(binary.LittleEndian.Uint32(h[4:]))
	if n < int64(lo) || n > int64(hi) {
		return 0, nil, fmt.Errorf("rdma: control %s frame: a payload of %d bytes, want %d to %d", t, n, lo, hi)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, fmt.Errorf("rdma: control %s frame: %w", t, noEOF(err))
	}
	return t, p, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func helloPayload() []byte {
	p := make([]byte, helloLen)
	copy(p, ctlMagic)
	binary.LittleEndian.PutUint16(p[8:], ctlVersion)
	return p
}

func checkHello(p []byte) error {
	if string(p[:8]) != ctlMagic {
		return fmt.Errorf("rdma: the peer is not an rdma_in/rdma_out (hello magic %q)", p[:8])
	}
	if v := binary.LittleEndian.Uint16(p[8:]); v != ctlVersion {
		return fmt.Errorf("rdma: the peer speaks version %d, this side %d", v, ctlVersion)
	}
	return nil
}

// setup is the receiver's offer: where to write and how to signal.
type setup struct {
	rkey   uint32
	window uint64 // the region's size
	qpPort uint16 // 0: real verbs (a verbs frame follows)
	recvs  uint32 // receives posted for descriptors
	handle Handle // to map the region on the same host
	base   uint64 // the region's address (real verbs; 0 for the emulation's offsets)
}

func (s setup) payload() []byte {
	p := make([]byte, setupLen)
	le := binary.LittleEndian
	le.PutUint32(p[0:], s.rkey)
	le.PutUint16(p[4:], s.qpPort)
	le.PutUint32(p[8:], s.recvs)
	le.PutUint64(p[16:], s.window)
	copy(p[24:40], s.handle.Boot[:])
	le.PutUint32(p[40:], uint32(s.handle.PID))
	le.PutUint32(p[44:], uint32(s.handle.FD))
	le.PutUint64(p[48:], s.handle.Size)
	le.PutUint64(p[56:], s.base)
	return p
}

func parseSetup(p []byte) (setup, error) {
	le := binary.LittleEndian
	s := setup{rkey: le.Uint32(p[0:]), qpPort: le.Uint16(p[4:]), recvs: le.Uint32(p[8:]), window: le.Uint64(p[16:])}
	copy(s.handle.Boot[:], p[24:40])
	s.handle.PID, s.handle.FD, s.handle.Size = int32(le.Uint32(p[40:])), int32(le.Uint32(p[44:])), le.Uint64(p[48:])
	s.base = le.Uint64(p[56:])
	switch {
	case s.window < minWindow || s.window > maxWindow:
		return s, fmt.Errorf("rdma: setup: a receive region of %d bytes (want %d to %d)", s.window, minWindow, maxWindow)
	case s.recvs == 0 || s.recvs > maxRecvs:
		return s, fmt.Errorf("rdma: setup: %d receives posted (want 1 to %d)", s.recvs, maxRecvs)
	case s.qpPort == 0 && s.base == 0:
		return s, fmt.Errorf("rdma: setup: neither a queue pair port nor a verbs region address")
	}
	return s, nil
}

func pair(a, b uint64) []byte {
	p := make([]byte, 16)
	binary.LittleEndian.PutUint64(p, a)
	binary.LittleEndian.PutUint64(p[8:], b)
	return p
}

func unpair(p []byte) (uint64, uint64) {
	return binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:])
}

func verbsPayload(q QPInfo) []byte {
	p := make([]byte, verbsLen)
	le := binary.LittleEndian
	le.PutUint32(p[0:], q.QPN)
	le.PutUint32(p[4:], q.PSN)
	le.PutUint16(p[8:], q.LID)
	copy(p[16:], q.GID[:])
	return p
}

func parseVerbs(p []byte) QPInfo {
	le := binary.LittleEndian
	q := QPInfo{QPN: le.Uint32(p[0:]), PSN: le.Uint32(p[4:]), LID: le.Uint16(p[8:])}
	copy(q.GID[:], p[16:32])
	return q
}

// expectCtl reads the next frame and checks its type; an error frame
// becomes the peer's error.
func expectCtl(r io.Reader, want ctlType, peer string) ([]byte, error) {
	t, p, err := readCtl(r)
	if err != nil {
		return nil, fmt.Errorf("read the %s's %s: %w", peer, want, noEOF(err))
	}
	if t == ctlError {
		return nil, fmt.Errorf("the %s failed: %s", peer, p)
	}
	if t != want {
		return nil, fmt.Errorf("the %s sent a %s frame, want %s", peer, t, want)
	}
	return p, nil
}
