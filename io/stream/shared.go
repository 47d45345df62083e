package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// What a transport that moves a batch's buffers itself needs (shared
// memory: the shm_out sink and the shm_in source): a batch as Arrow IPC
// record-batch metadata plus the arrays' own buffers, the metadata's
// buffer offsets rewritten to point wherever the transport put each
// buffer, and the same bounds checks on the way in as on a socket.

// Encoded is one record batch: its IPC message metadata (the flatbuffer,
// without the continuation and length prefix) and its body as the slices
// it is made of, in order: the arrays' own buffers, and padding.
type Encoded struct {
	Meta []byte
	Body [][]byte
}

// BatchEncoder encodes record batches without copying their buffers.
type BatchEncoder struct{ e *encoder }

// NewBatchEncoder returns an encoder for batches of schema; buffers the
// IPC writer must make itself (offsets of a sliced array, a realigned
// bitmap) come from mem.
func NewBatchEncoder(schema *arrow.Schema, mem memory.Allocator) *BatchEncoder {
	return &BatchEncoder{e: newEncoder(schema, mem)}
}

// ErrDictionary is returned for a batch with dictionary-encoded columns,
// whose dictionaries an IPC stream sends apart from the batch.
var ErrDictionary = errors.New("dictionary-encoded columns are not supported here (cast them to their value type)")

// Encode returns rec's record-batch message and a release to run when the
// transport no longer needs the buffers (it holds rec until then). The
// slices of Body stay valid until release.
func (b *BatchEncoder) Encode(rec arrow.RecordBatch) (Encoded, func(), error) {
	msgs, release, err := b.e.encode(rec)
	if err != nil {
		return Encoded{}, nil, err
	}
	if len(msgs) != 1 || msgs[0].typ != ipc.MessageRecordBatch {
		release()
		return Encoded{}, nil, fmt.Errorf("stream: encode batch: %w", ErrDictionary)
	}
	head := msgs[0].bufs[0]
	n := binary.LittleEndian.Uint32(head[4:])
	return Encoded{Meta: head[8 : 8+n], Body: msgs[0].bufs[1:]}, release, nil
}

// Close ends the encoder.
func (b *BatchEncoder) Close() error { return b.e.close() }

// SchemaBytes is the IPC schema message of s: continuation, length,
// flatbuffer and padding, as a stream starts.
func SchemaBytes(s *arrow.Schema) ([]byte, error) { return schemaMessage(s) }

// Rebase rewrites the buffer offsets of a record-batch message's metadata
// in place: where returns, for each non-empty buffer of the body (a slice
// of e.Body), its offset in the memory the receiver will use as the body,
// and the body length is set to bodyLen. Empty buffers get offset 0.
func Rebase(e Encoded, bodyLen int64, where func(buf []byte) (int64, error)) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("stream: rebase: malformed metadata: %v", p)
		}
	}()
	b := fb(e.Meta)
	msg := b.u32(0)
	bl := b.field(msg, 10)
	if bl == 0 {
		return fmt.Errorf("stream: rebase: the message has no body length to set")
	}
	rb := b.table(msg, 8)
	if rb == 0 {
		return fmt.Errorf("stream: rebase: not a record batch")
	}
	// The IPC writer lays the buffers out in order, each followed by its
	// padding: walk the body's slices alongside the buffers vector.
	le := binary.LittleEndian
	v, n := b.vector(rb, 8, 16)
	body, pos := e.Body, int64(0)
	for i := 0; i < n; i++ {
		p := v + 16*i
		off, ln := int64(le.Uint64(b[p:])), int64(le.Uint64(b[p+8:]))
		if ln == 0 {
			le.PutUint64(b[p:], 0)
			continue
		}
		for len(body) > 0 && (pos < off || len(body[0]) == 0) {
			pos += int64(len(body[0]))
			body = body[1:]
		}
		if len(body) == 0 || pos != off || int64(len(body[0])) < ln {
			return fmt.Errorf("stream: rebase: buffer %d (%d bytes at %d) is not one slice of the body", i, ln, off)
		}
		no, err := where(body[0][:ln])
		if err != nil {
			return err
		}
		le.PutUint64(b[p:], uint64(no))
	}
	le.PutUint64(b[bl:], uint64(bodyLen))
	return nil
}

// CheckBatchMeta checks a record-batch message's metadata as a receiver
// must before arrow-go reads it (vectors within the metadata, buffers
// within a body of bodyLen bytes, no compression) and returns the message.
func CheckBatchMeta(meta []byte, body *memory.Buffer) (*ipc.Message, error) {
	typ, bl, err := checkMeta(meta)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	if typ != fbRecordBatch {
		return nil, fmt.Errorf("stream: an IPC message of header type %d, want a record batch", typ)
	}
	if bl > int64(body.Len()) {
		return nil, fmt.Errorf("stream: a message body of %d bytes in %d", bl, body.Len())
	}
	return ipc.NewMessage(memory.NewBufferBytes(meta), body), nil
}

// CheckSchemaMessage checks an IPC schema message (continuation, length,
// flatbuffer) as SchemaBytes makes it and returns its metadata.
func CheckSchemaMessage(msg []byte) (meta []byte, err error) {
	if len(msg) < 8 || binary.LittleEndian.Uint32(msg) != 0xffffffff {
		return nil, fmt.Errorf("stream: a schema message must start with the continuation token")
	}
	n := int(binary.LittleEndian.Uint32(msg[4:]))
	if n > len(msg)-8 || n > maxSchemaMeta {
		return nil, fmt.Errorf("stream: a schema message of %d bytes claims %d", len(msg), n)
	}
	meta = msg[8 : 8+n]
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("stream: malformed schema message: %v", p)
		}
	}()
	typ, _, err := checkMeta(meta)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	if typ != fbSchema {
		return nil, fmt.Errorf("stream: an IPC message of header type %d, want a schema", typ)
	}
	return meta, nil
}

// SchemaIPCMessage is the schema message msg (as SchemaBytes makes it),
// checked, as the first message an ipc.MessageReader hands arrow-go.
func SchemaIPCMessage(msg []byte) (*ipc.Message, error) {
	meta, err := CheckSchemaMessage(msg)
	if err != nil {
		return nil, err
	}
	return ipc.NewMessage(memory.NewBufferBytes(meta), memory.NewBufferBytes(nil)), nil
}

// Messages is the ipc.MessageReader of a transport that hands over one
// record-batch message at a time (shm_in, rdma_in): the schema message
// first, then what Next returns until io.EOF. Each message is released
// when the next is asked for, as arrow-go expects; Err keeps the first
// error other than io.EOF that Next returned, which arrow-go's reader
// does not pass on.
type Messages struct {
	Schema []byte
	Next   func() (*ipc.Message, error)
	Err    error
	sent   bool
	last   *ipc.Message
}

// Retain does nothing: the reader is owned by one ipc.Reader.
func (m *Messages) Retain() {}

// Release releases the last message (the reader's own release at the end).
func (m *Messages) Release() {
	if m.last != nil {
		m.last.Release()
		m.last = nil
	}
}

// Message returns the next message.
func (m *Messages) Message() (*ipc.Message, error) {
	m.Release()
	if !m.sent {
		m.sent = true
		return SchemaIPCMessage(m.Schema)
	}
	msg, err := m.Next()
	if err != nil {
		if err != io.EOF && m.Err == nil {
			m.Err = err
		}
		return nil, err
	}
	m.last = msg
	return msg, nil
}
