package stream

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// eosMarker ends an Arrow IPC stream: continuation token, zero length.
var eosMarker = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}

// zeroPad pads IPC message bodies to 8 bytes; shared, never written.
var zeroPad [8]byte

// schemaMessage returns the IPC schema message of s (continuation, length,
// flatbuffer, padding), as arrow-go writes it.
func schemaMessage(s *arrow.Schema) ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(s))
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("stream: encode schema: %w", err)
	}
	b := buf.Bytes()
	if !bytes.HasSuffix(b, eosMarker) {
		return nil, fmt.Errorf("stream: encode schema: no end-of-stream marker")
	}
	return b[:len(b)-len(eosMarker)], nil
}

// message is one encoded IPC message as a scatter-gather list: bufs[0] is
// the message header (continuation, length, flatbuffer metadata, padding),
// the rest the body buffers straight from the batch's memory and the shared
// zero padding.
type message struct {
	typ  ipc.MessageType
	bufs [][]byte
	n    int
}

// encoder turns record batches into IPC messages without copying their
// bodies: arrow-go's ipc.Writer makes the payloads (metadata, and the body
// as the arrays' own buffers) and a PayloadWriter takes them as lists of
// slices instead of writing them. The few buffers the writer allocates
// itself (offsets rebased for a sliced array, a bitmap realigned) come from
// a holding allocator whose frees wait until the message's send completed.
type encoder struct {
	w     *ipc.Writer
	hold  *holdAlloc
	emit  func(m message, release func()) error
	empty *memory.Buffer
	msgs  []message
}

func newEncoder(schema *arrow.Schema, mem memory.Allocator) *encoder {
	e := &encoder{hold: &holdAlloc{mem: mem}, empty: memory.NewBufferBytes(nil)}
	e.w = ipc.NewWriterWithPayloadWriter((*payloadWriter)(e), ipc.WithSchema(schema), ipc.WithAllocator(e.hold))
	return e
}

// encode returns the messages of rec (dictionaries, then the batch) and a
// release to call once every one of them has been sent and completed; it
// holds rec and what the writer allocated until then.
func (e *encoder) encode(rec arrow.RecordBatch) ([]message, func(), error) {
	rec.Retain()
	h := &held{rec: rec, mem: e.hold.mem}
	e.hold.cur = h
	e.msgs = e.msgs[:0]
	err := e.w.Write(rec)
	e.hold.cur = nil
	if err != nil {
		h.release()
		return nil, nil, fmt.Errorf("stream: encode batch: %w", err)
	}
	return e.msgs, h.release, nil
}

// close finishes the writer (it releases its dictionaries).
func (e *encoder) close() error {
	err := e.w.Close()
	if err != nil {
		return fmt.Errorf("stream: close encoder: %w", err)
	}
	return nil
}

type payloadWriter encoder

func (p *payloadWriter) Start() error { return nil }
func (p *payloadWriter) Close() error { return nil }

func (p *payloadWriter) WritePayload(pl ipc.Payload) error {
	meta := pl.Meta()
	if meta == nil {
		return fmt.Errorf("stream: payload without metadata")
	}
	defer meta.Release()
	m := ipc.NewMessage(meta, p.empty)
	typ := m.Type()
	m.Release()
	if typ == ipc.MessageSchema {
		return nil // the schema goes out once, in the handshake
	}
	mb := meta.Bytes()
	padded := (len(mb) + 8 + 7) &^ 7
	head := make([]byte, padded) // kept by the message until its send completes
	binary.LittleEndian.PutUint32(head, 0xffffffff)
	binary.LittleEndian.PutUint32(head[4:], uint32(padded-8))
	copy(head[8:], mb)
	c := collector{bufs: [][]byte{head}, n: len(head)}
	if err := pl.SerializeBody(&c); err != nil {
		return err
	}
	p.msgs = append(p.msgs, message{typ: typ, bufs: c.bufs, n: c.n})
	return nil
}

// collector keeps the slices it is given, without copying: body buffers
// (alive while the batch is held) and the shared zero padding.
type collector struct {
	bufs [][]byte
	n    int
}

func (c *collector) Write(b []byte) (int, error) {
	if len(b) <= len(zeroPad) && bytes.Equal(b, zeroPad[:len(b)]) {
		b = zeroPad[:len(b)] // arrow-go's padding: point at ours
	}
	c.bufs = append(c.bufs, b)
	c.n += len(b)
	return len(b), nil
}

// holdAlloc is the writer's allocator: frees during an encode wait for
// that batch's release.
type holdAlloc struct {
	mem memory.Allocator
	cur *held
}

func (a *holdAlloc) Allocate(n int) []byte { return a.mem.Allocate(n) }
func (a *holdAlloc) Reallocate(n int, b []byte) []byte {
	return a.mem.Reallocate(n, b)
}

func (a *holdAlloc) Free(b []byte) {
	if a.cur != nil && !a.cur.done {
		a.cur.frees = append(a.cur.frees, b)
		return
	}
	a.mem.Free(b)
}

// held is what one batch's messages need until their sends complete.
type held struct {
	rec   arrow.RecordBatch
	mem   memory.Allocator
	frees [][]byte
	done  bool
}

func (h *held) release() {
	if h.done {
		return
	}
	h.done = true
	h.rec.Release()
	for _, b := range h.frees {
		h.mem.Free(b)
	}
	h.frees = nil
}

// sameSchema returns rec with schema s when its columns match s but its
// schema object differs (metadata), without copying.
func withSchema(rec arrow.RecordBatch, s *arrow.Schema) (arrow.RecordBatch, bool) {
	if rec.Schema() == s || rec.Schema().Equal(s) {
		return rec, false
	}
	return array.NewRecordBatch(s, rec.Columns(), rec.NumRows()), true
}
