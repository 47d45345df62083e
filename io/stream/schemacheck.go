package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// arrow-go decodes a schema message's flatbuffer without a verifier and
// sizes slices by the vector lengths it finds there (fields, children,
// metadata): a corrupt length of a few billion makes it allocate that many
// fields before anything fails. So the schema message is read here first
// and its vectors are checked against the bytes that hold them. The walk
// follows the Arrow format's Schema.fbs / Message.fbs: table fields are
// vtable slots 4, 6, 8, ... in declaration order.

const maxSchemaDepth = 64

// fb reads a flatbuffer with every offset bounds-checked.
type fb []byte

var errFB = errors.New("bad flatbuffer")

func (b fb) u16(p int) int {
	if p < 0 || p+2 > len(b) {
		panic(errFB)
	}
	return int(binary.LittleEndian.Uint16(b[p:]))
}

func (b fb) u32(p int) int {
	if p < 0 || p+4 > len(b) {
		panic(errFB)
	}
	return int(binary.LittleEndian.Uint32(b[p:]))
}

// field returns the position of table t's field in slot (4, 6, ...), 0
// when absent.
func (b fb) field(t, slot int) int {
	vt := t - int(int32(b.u32(t)))
	if vtLen := b.u16(vt); slot >= vtLen {
		return 0
	}
	if off := b.u16(vt + slot); off != 0 {
		return t + off
	}
	return 0
}

// table follows the offset in slot to a table.
func (b fb) table(t, slot int) int {
	p := b.field(t, slot)
	if p == 0 {
		return 0
	}
	return p + b.u32(p)
}

// vector follows slot to a vector of elements of size elem and returns its
// start and length, checked to fit the buffer.
func (b fb) vector(t, slot, elem int) (int, int) {
	p := b.field(t, slot)
	if p == 0 {
		return 0, 0
	}
	v := p + b.u32(p)
	n := b.u32(v)
	if n > (len(b)-v-4)/elem {
		panic(fmt.Errorf("a vector claims %d elements in %d bytes", n, len(b)-v-4))
	}
	return v + 4, n
}

// checkSchemaMeta checks the flatbuffer of a schema message.
func checkSchemaMeta(meta []byte) error {
	b := fb(meta)
	msg := b.u32(0)
	schema := b.table(msg, 8)
	if schema == 0 {
		return fmt.Errorf("a schema message without a schema")
	}
	b.vector(schema, 8, 4)  // custom_metadata
	b.vector(schema, 10, 8) // features
	return b.fields(schema, 6, 0)
}

// fields checks a vector of Field tables in slot, recursively.
func (b fb) fields(t, slot, depth int) error {
	if depth > maxSchemaDepth {
		return fmt.Errorf("fields nested deeper than %d", maxSchemaDepth)
	}
	v, n := b.vector(t, slot, 4)
	for i := 0; i < n; i++ {
		p := v + 4*i
		f := p + b.u32(p)
		b.vector(f, 16, 4)                               // custom_metadata
		if tt := b.field(f, 8); tt != 0 && b[tt] == 14 { // Union: typeIds
			if u := b.table(f, 10); u != 0 {
				b.vector(u, 6, 4)
			}
		}
		if err := b.fields(f, 14, depth+1); err != nil { // children
			return err
		}
	}
	return nil
}

// readMeta reads the start of one encapsulated IPC message (continuation
// token, length, flatbuffer), checks the flatbuffer and returns those bytes,
// the message type and its body length. The end-of-stream marker is
// io.EOF.
func readMeta(r io.Reader, maxBody int64) ([]byte, int, int64, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:4]); err != nil {
		return nil, 0, 0, err
	}
	n := binary.LittleEndian.Uint32(pre[:4])
	head := 4
	if n == 0xffffffff {
		if _, err := io.ReadFull(r, pre[4:8]); err != nil {
			return nil, 0, 0, noEOF(err)
		}
		n = binary.LittleEndian.Uint32(pre[4:8])
		head = 8
	}
	if n == 0 {
		return nil, 0, 0, io.EOF
	}
	if n > maxSchemaMeta {
		return nil, 0, 0, fmt.Errorf("message metadata of %d bytes, more than the limit of %d", n, maxSchemaMeta)
	}
	msg := make([]byte, head+int(n))
	copy(msg, pre[:head])
	if _, err := io.ReadFull(r, msg[head:]); err != nil {
		return nil, 0, 0, noEOF(err)
	}
	typ, body, err := checkMeta(msg[head:])
	if err != nil {
		return nil, 0, 0, err
	}
	if body > maxBody {
		return nil, 0, 0, fmt.Errorf("a message body of %d bytes, more than the limit of %d", body, maxBody)
	}
	return msg, typ, body, nil
}

// Message header types of Message.fbs.
const (
	fbSchema          = 1
	fbDictionaryBatch = 2
	fbRecordBatch     = 3
)

// checkMeta checks a message's flatbuffer: a schema's vectors, or a
// batch's buffers inside its body (arrow-go slices the body by them
// unchecked), and no compression (whose uncompressed length prefix would
// size an allocation).
func checkMeta(meta []byte) (typ int, bodyLen int64, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed message metadata: %v", p)
		}
	}()
	b := fb(meta)
	msg := b.u32(0)
	ht := b.field(msg, 6)
	if ht == 0 {
		return 0, 0, fmt.Errorf("a message without a header")
	}
	typ = int(b[ht])
	if bl := b.field(msg, 10); bl != 0 {
		bodyLen = int64(binary.LittleEndian.Uint64(b[bl : bl+8]))
	}
	if bodyLen < 0 || bodyLen%8 != 0 {
		return 0, 0, fmt.Errorf("a message body of %d bytes, not a multiple of 8", bodyLen)
	}
	b.vector(msg, 12, 4) // custom_metadata
	switch typ {
	case fbSchema:
		if bodyLen != 0 {
			return 0, 0, fmt.Errorf("a schema message with a body")
		}
		return typ, 0, checkSchemaMeta(meta)
	case fbRecordBatch:
		return typ, bodyLen, b.checkBatch(b.table(msg, 8), bodyLen)
	case fbDictionaryBatch:
		d := b.table(msg, 8)
		if d == 0 {
			return 0, 0, fmt.Errorf("a dictionary batch without a header")
		}
		return typ, bodyLen, b.checkBatch(b.table(d, 6), bodyLen)
	}
	return 0, 0, fmt.Errorf("an IPC message of header type %d, want a schema, dictionary or record batch", typ)
}

func (b fb) checkBatch(rb int, bodyLen int64) error {
	if rb == 0 {
		return fmt.Errorf("a batch message without a record batch")
	}
	if b.field(rb, 10) != 0 {
		return fmt.Errorf("a compressed record batch; send uncompressed IPC")
	}
	// Rows and node lengths: every value of every array but the null type
	// (and empty structs) takes at least a bit of the body, so a length
	// beyond 8 bits per body byte is a lie that would make decoding and
	// validation loop over values that are not there.
	maxLen := 8*bodyLen + 1<<16
	if p := b.field(rb, 4); p != 0 {
		if n := int64(binary.LittleEndian.Uint64(b[p : p+8])); n < 0 || n > maxLen {
			return fmt.Errorf("a record batch of %d rows in a %d-byte body", n, bodyLen)
		}
	}
	nv, nn := b.vector(rb, 6, 16) // nodes: length, null_count
	for i := 0; i < nn; i++ {
		p := nv + 16*i
		ln := int64(binary.LittleEndian.Uint64(b[p : p+8]))
		nulls := int64(binary.LittleEndian.Uint64(b[p+8 : p+16]))
		if ln < 0 || ln > maxLen || nulls < 0 || nulls > ln {
			return fmt.Errorf("array %d claims %d values (%d null) in a %d-byte body", i, ln, nulls, bodyLen)
		}
	}
	b.vector(rb, 12, 8) // variadicBufferCounts
	v, n := b.vector(rb, 8, 16)
	for i := 0; i < n; i++ {
		p := v + 16*i
		off := int64(binary.LittleEndian.Uint64(b[p : p+8]))
		ln := int64(binary.LittleEndian.Uint64(b[p+8 : p+16]))
		if off < 0 || ln < 0 || off > bodyLen || ln > bodyLen-off {
			return fmt.Errorf("buffer %d at %d of %d bytes lies outside the %d-byte body", i, off, ln, bodyLen)
		}
	}
	return nil
}

// maxSchemaMeta bounds a message's metadata.
const maxSchemaMeta = 16 << 20
