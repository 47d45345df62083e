package operators

import (
	"encoding/binary"
	"io"
)

// ipcBlock is a record batch's place in an Arrow IPC file, as its footer
// lists it: the message starts at off with meta bytes of metadata
// (prefix included), then body bytes of body.
type ipcBlock struct {
	off  int64
	meta int32
	body int64
}

// end is the offset just past the block's body.
func (b ipcBlock) end() int64 { return b.off + int64(b.meta) + b.body }

// ipcFooterBlocks reads the footer of the Arrow IPC file of size bytes
// behind ra and returns its record-batch blocks (File.fbs: the Footer
// table's recordBatches, a vector of 24-byte Block structs). Every offset
// is bounds-checked; anything malformed returns nil, which only turns
// read-ahead off: arrow-go parses and validates the footer on its own
// and says what is wrong.
func ipcFooterBlocks(ra io.ReaderAt, size int64) []ipcBlock {
	const trailer = 4 + 6 // footer length, ARROW1
	if size < int64(2*len(arrowMagic)+trailer) {
		return nil
	}
	var tail [trailer]byte
	if n, _ := ra.ReadAt(tail[:], size-trailer); n != trailer || string(tail[4:]) != string(arrowMagic) {
		return nil
	}
	flen := int64(int32(binary.LittleEndian.Uint32(tail[:4])))
	if flen <= 0 || flen > size-trailer-8 || flen > 64<<20 {
		return nil
	}
	buf := make([]byte, flen)
	if n, _ := ra.ReadAt(buf, size-trailer-flen); int64(n) != flen {
		return nil
	}
	return parseFooterBlocks(buf, size-trailer-flen)
}

// parseFooterBlocks decodes the recordBatches of a Footer flatbuffer;
// limit is where the footer starts in the file (every block must end
// before it). nil when anything is out of bounds.
func parseFooterBlocks(buf []byte, limit int64) []ipcBlock {
	n := int64(len(buf))
	u32 := func(at int64) (int64, bool) {
		if at < 0 || at+4 > n {
			return 0, false
		}
		return int64(binary.LittleEndian.Uint32(buf[at:])), true
	}
	u16 := func(at int64) (int64, bool) {
		if at < 0 || at+2 > n {
			return 0, false
		}
		return int64(binary.LittleEndian.Uint16(buf[at:])), true
	}
	table, ok := u32(0)
	if !ok {
		return nil
	}
	soff, ok := u32(table)
	if !ok {
		return nil
	}
	vtable := table - int64(int32(uint32(soff)))
	vtlen, ok := u16(vtable)
	const field = 4 + 2*3 // recordBatches is the Footer's fourth field
	if !ok || vtlen < field+2 {
		return nil // no record batches
	}
	foff, ok := u16(vtable + field)
	if !ok || foff == 0 {
		return nil
	}
	at := table + foff
	rel, ok := u32(at)
	if !ok {
		return nil
	}
	vec := at + rel
	count, ok := u32(vec)
	const blockSize = 24 // offset int64, metaDataLength int32, padding, bodyLength int64
	if !ok || count == 0 || count > (n-vec-4)/blockSize {
		return nil
	}
	blocks := make([]ipcBlock, count)
	for i := range blocks {
		p := vec + 4 + int64(i)*blockSize
		b := ipcBlock{
			off:  int64(binary.LittleEndian.Uint64(buf[p:])),
			meta: int32(binary.LittleEndian.Uint32(buf[p+8:])),
			body: int64(binary.LittleEndian.Uint64(buf[p+16:])),
		}
		if b.off < 8 || b.meta <= 0 || b.body < 0 || b.body > limit || b.off > limit || b.end() > limit || b.end() < b.off {
			return nil
		}
		blocks[i] = b
	}
	return blocks
}
