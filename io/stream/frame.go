package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// FrameType says what a zflow-protocol frame holds.
type FrameType uint8

// The frame types; docs/stream.md has their layouts.
const (
	FrameHello  FrameType = 1 // both ways, first: magic and version
	FrameSchema FrameType = 2 // sender: the IPC schema message
	FrameDict   FrameType = 3 // sender: an IPC dictionary batch message
	FrameBatch  FrameType = 4 // sender: an IPC record batch message, seq, trace carrier
	FrameCredit FrameType = 5 // receiver: seq more batches may be sent
	FrameEnd    FrameType = 6 // sender: seq batches sent; payload: rows (u64)
	FrameEndAck FrameType = 7 // receiver: the end checked; seq batches, payload rows
	FrameError  FrameType = 8 // either: payload is the error message (UTF-8)
)

var frameNames = [...]string{"", "hello", "schema", "dict", "batch", "credit", "end", "end_ack", "error"}

func (t FrameType) String() string {
	if int(t) < len(frameNames) && t != 0 {
		return frameNames[t]
	}
	return fmt.Sprintf("frame type %d", uint8(t))
}

// HeaderSize is the size of a frame header; a payload follows it.
const HeaderSize = 56

// CarrierSize is the size of the trace carrier in a batch frame (the
// layout of engine.TraceCarrier).
const CarrierSize = 26

// Magic starts the payload of a hello frame; Version is the protocol
// version this package speaks.
const (
	Magic   = "ZFLOWSTR"
	Version = 1
)

// helloSize is the payload of a hello frame: magic, version u16, 6 zero bytes.
const helloSize = 16

// Limits on payloads: control frames are small; a message frame is bounded
// by the receiver's MaxMessage.
const (
	maxErrorPayload = 64 << 10
	maxMetaPayload  = maxSchemaMeta + 8 // a schema message
)

// Header is a frame header:
//
//	byte 0       type
//	bytes 1–7    zero (flags, reserved)
//	bytes 8–15   seq, u64 little-endian (meaning per type)
//	bytes 16–23  payload length, u64 little-endian
//	bytes 24–49  trace carrier (batch frames; zero otherwise)
//	bytes 50–55  zero padding (keeps the payload 8-byte aligned)
type Header struct {
	Type    FrameType
	Seq     uint64
	Length  uint64
	Carrier [CarrierSize]byte
}

// Put writes h into b[:HeaderSize].
func (h *Header) Put(b []byte) {
	_ = b[HeaderSize-1]
	clear(b[:HeaderSize])
	b[0] = byte(h.Type)
	binary.LittleEndian.PutUint64(b[8:], h.Seq)
	binary.LittleEndian.PutUint64(b[16:], h.Length)
	copy(b[24:50], h.Carrier[:])
}

// ErrFrame marks a malformed frame.
var ErrFrame = errors.New("stream: malformed frame")

// ParseHeader reads and checks a header; maxMessage bounds the payload of
// message frames. The error names the offset of the bad field.
func ParseHeader(b []byte, maxMessage uint64) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: header of %d bytes, want %d", ErrFrame, len(b), HeaderSize)
	}
	h.Type = FrameType(b[0])
	h.Seq = binary.LittleEndian.Uint64(b[8:])
	h.Length = binary.LittleEndian.Uint64(b[16:])
	copy(h.Carrier[:], b[24:50])
	if h.Type < FrameHello || h.Type > FrameError {
		return h, fmt.Errorf("%w: unknown type %d at byte 0", ErrFrame, b[0])
	}
	for i, c := range b[1:8] {
		if c != 0 {
			return h, fmt.Errorf("%w: %s frame: reserved byte %d is %#02x, want 0", ErrFrame, h.Type, i+1, c)
		}
	}
	for i, c := range b[50:HeaderSize] {
		if c != 0 {
			return h, fmt.Errorf("%w: %s frame: padding byte %d is %#02x, want 0", ErrFrame, h.Type, i+50, c)
		}
	}
	if h.Type != FrameBatch && h.Carrier != ([CarrierSize]byte{}) {
		return h, fmt.Errorf("%w: %s frame carries a trace carrier (bytes 24–49), only batch frames do", ErrFrame, h.Type)
	}
	if h.Type == FrameBatch {
		if err := checkCarrier(h.Carrier); err != nil {
			return h, err
		}
	}
	var limit uint64
	switch h.Type {
	case FrameHello:
		if h.Length != helloSize {
			return h, fmt.Errorf("%w: hello frame of %d bytes, want %d (byte 16)", ErrFrame, h.Length, helloSize)
		}
		limit = helloSize
	case FrameCredit:
		if h.Length != 0 {
			return h, fmt.Errorf("%w: credit frame with a %d-byte payload, want none (byte 16)", ErrFrame, h.Length)
		}
		if h.Seq == 0 || h.Seq > 1<<20 {
			return h, fmt.Errorf("%w: credit frame grants %d batches, want 1 to %d (byte 8)", ErrFrame, h.Seq, 1<<20)
		}
	case FrameEnd, FrameEndAck:
		if h.Length != 8 {
			return h, fmt.Errorf("%w: %s frame of %d bytes, want 8 (byte 16)", ErrFrame, h.Type, h.Length)
		}
		limit = 8
	case FrameError:
		limit = maxErrorPayload
	case FrameSchema:
		limit = min(maxMetaPayload, maxMessage)
	case FrameDict, FrameBatch:
		limit = maxMessage
		if h.Length < 8 {
			return h, fmt.Errorf("%w: %s frame of %d bytes cannot hold an IPC message (byte 16)", ErrFrame, h.Type, h.Length)
		}
	}
	if h.Length > limit {
		return h, fmt.Errorf("%w: %s frame of %d bytes, more than the limit of %d (byte 16)", ErrFrame, h.Type, h.Length, limit)
	}
	if (h.Type == FrameBatch || h.Type == FrameDict) && h.Seq == 0 {
		return h, fmt.Errorf("%w: %s frame with sequence number 0 (byte 8); batches count from 1", ErrFrame, h.Type)
	}
	return h, nil
}

// checkCarrier checks a trace carrier the way engine.ParseTraceCarrier
// does (this package cannot import the engine): all zero, or version 0,
// known flags, non-zero ids.
func checkCarrier(c [CarrierSize]byte) error {
	if c == ([CarrierSize]byte{}) {
		return nil
	}
	switch {
	case c[0] != 0:
		return fmt.Errorf("%w: batch frame: trace carrier version %d, want 0 (byte 24)", ErrFrame, c[0])
	case c[25]&^1 != 0:
		return fmt.Errorf("%w: batch frame: trace carrier flags %#02x, want 0 or 1 (byte 49)", ErrFrame, c[25])
	case [16]byte(c[1:17]) == [16]byte{}:
		return fmt.Errorf("%w: batch frame: trace carrier with an all-zero trace id (byte 25)", ErrFrame)
	case [8]byte(c[17:25]) == [8]byte{}:
		return fmt.Errorf("%w: batch frame: trace carrier with an all-zero parent id (byte 41)", ErrFrame)
	}
	return nil
}

// helloPayload is this side's hello.
func helloPayload() []byte {
	b := make([]byte, helloSize)
	copy(b, Magic)
	binary.LittleEndian.PutUint16(b[8:], Version)
	return b
}

// checkHello checks a peer's hello payload.
func checkHello(b []byte) error {
	if len(b) != helloSize || string(b[:8]) != Magic {
		return fmt.Errorf("%w: hello without the magic %q: the peer does not speak the zflow protocol (is it sending protocol: arrow?)", ErrFrame, Magic)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != Version {
		return fmt.Errorf("stream: the peer speaks zflow protocol version %d, this side %d", v, Version)
	}
	for i, c := range b[10:] {
		if c != 0 {
			return fmt.Errorf("%w: hello: reserved byte %d is %#02x, want 0", ErrFrame, i+10, c)
		}
	}
	return nil
}

// readFrame reads a header and, for control frames, its payload (into buf
// when it fits). Message frames' payloads are left on r.
func readFrame(r io.Reader, hdr []byte, maxMessage uint64) (Header, []byte, error) {
	if _, err := io.ReadFull(r, hdr[:HeaderSize]); err != nil {
		return Header{}, nil, err
	}
	h, err := ParseHeader(hdr, maxMessage)
	if err != nil {
		return h, nil, err
	}
	switch h.Type {
	case FrameHello, FrameEnd, FrameEndAck, FrameError:
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			return h, nil, fmt.Errorf("stream: %s frame payload: %w", h.Type, noEOF(err))
		}
		return h, p, nil
	}
	return h, nil, nil
}

// noEOF turns io.EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// frame returns header bytes for h with payload length n.
func frame(t FrameType, seq uint64, n int, carrier [CarrierSize]byte) []byte {
	b := make([]byte, HeaderSize)
	h := Header{Type: t, Seq: seq, Length: uint64(n), Carrier: carrier}
	h.Put(b)
	return b
}

func putU64(b []byte, v uint64) { binary.LittleEndian.PutUint64(b, v) }
