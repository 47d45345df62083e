package cxl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
)

// The segment's first page is its header. Bytes [0, StaticBytes) are written
// once, when the segment is made, and checked by a CRC-32C at StaticBytes-4;
// the version field is stored last (0 means "still being made"), so a reader
// that sees a version sees every other static field. Bytes [StaticBytes,
// HeaderBytes) hold counters that change while the segment lives.
//
// Static part, little-endian:
//
//	off  size  field
//	  0     8  magic "ZFLOWSEG"
//	  8     4  version (Version; stored last)
//	 12     4  header bytes (HeaderBytes)
//	 16     8  segment size in bytes
//	 24     8  alignment of the mapping and of the data region
//	 32     4  creator pid
//	 36     4  backing (Backing)
//	 40     8  creator start time, clock ticks after boot
//	 48     4  creator boot id (first 32 bits)
//	 52     4  creator pid space (atomicfile.Owner.Space)
//	 56     8  created, Unix nanoseconds
//	 64     8  slots offset      72  4 slot count      76  4 slot bytes
//	 80     8  channels offset   88  4 channel count   92  4 channel bytes
//	 96     8  data offset      104  8 data bytes
//	112     8  extents offset   120  4 extent count    124  4 extent entry bytes
//	128     8  extent size (the data region is Count extents of this size)
//	136   116  zero
//	252     4  CRC-32C (Castagnoli) of bytes [0, 252), version included
//
// Dynamic part: 256 generation (u64, bumped each time the segment is made
// anew at the same path or device).
const (
	Magic       = "ZFLOWSEG"
	Version     = 2
	HeaderBytes = 4096
	StaticBytes = 256

	offVersion    = 8
	offCRC        = StaticBytes - 4
	offGeneration = StaticBytes
)

// Layout limits a header must respect; they bound what a reader trusts.
const (
	minAlign     = 4096
	maxAlign     = 1 << 30
	maxSlots     = 4096
	minSlotBytes = 128
	maxSlotBytes = 64 << 10
	maxChannels  = 4096
	minChanBytes = 256
	maxChanBytes = 1 << 20
	maxExtents   = 1 << 24
	minExtent    = 1 << 20
	maxExtent    = 1 << 32
)

// Backing says what is behind a segment.
type Backing uint32

const (
	BackingFile      Backing = iota + 1 // a regular file on tmpfs or another file system
	BackingHugetlbfs                    // a file on hugetlbfs
	BackingDevDAX                       // a device-DAX character device
	BackingMemfd                        // an anonymous memfd
)

func (b Backing) String() string {
	switch b {
	case BackingFile:
		return "file"
	case BackingHugetlbfs:
		return "hugetlbfs"
	case BackingDevDAX:
		return "devdax"
	case BackingMemfd:
		return "memfd"
	}
	return fmt.Sprintf("Backing(%d)", uint32(b))
}

// Region is a part of the segment: Off and Count×Bytes (tables) or Off and
// Size (the data region).
type Region struct {
	Off   int64
	Count int
	Bytes int
}

// Size is the region's length in bytes.
func (r Region) Size() int64 { return int64(r.Count) * int64(r.Bytes) }

// Header is the decoded static part of a segment's header.
type Header struct {
	Version      uint32
	Size         int64
	Align        int64
	Backing      Backing
	CreatorPID   int
	CreatorStart uint64
	CreatorBoot  uint32
	CreatorSpace uint32
	CreatedNano  int64
	Slots        Region
	Channels     Region
	Extents      Region // the extent table: one entry per extent of the data region
	ExtentSize   int64
	DataOff      int64
	DataBytes    int64
}

// ErrNotReady is returned for a segment whose maker has not stored the
// version yet: callers wait for it, or find its maker dead and make it
// again.
var ErrNotReady = errors.New("segment is still being made (version 0)")

// ErrNotSegment is wrapped by the error for bytes that do not start with
// the magic.
var ErrNotSegment = errors.New("not a zflow segment")

// HeaderError says what is wrong with a segment's header and where.
type HeaderError struct {
	Name string // the segment's path
	Off  int64  // offset of the field in the segment
	Msg  string
	Err  error // a sentinel, or nil
}

func (e *HeaderError) Error() string {
	return fmt.Sprintf("cxl: segment %s: header at offset %d: %s", e.Name, e.Off, e.Msg)
}

func (e *HeaderError) Unwrap() error { return e.Err }

// DecodeHeader reads and checks the static header at the start of b, which
// must be the first bytes of the segment name (for messages) of size bytes.
// Every offset and length is checked against size with overflow in mind;
// nothing is trusted.
func DecodeHeader(name string, b []byte, size int64) (Header, error) {
	bad := func(off int64, format string, args ...any) (Header, error) {
		return Header{}, &HeaderError{Name: name, Off: off, Msg: fmt.Sprintf(format, args...)}
	}
	if len(b) < StaticBytes {
		return Header{}, &HeaderError{Name: name, Msg: fmt.Sprintf("not a zflow segment (%d bytes, a header needs %d)", len(b), StaticBytes), Err: ErrNotSegment}
	}
	if string(b[:8]) != Magic {
		return Header{}, &HeaderError{Name: name, Msg: fmt.Sprintf("not a zflow segment (magic %q, want %q)", b[:8], Magic), Err: ErrNotSegment}
	}
	le := binary.LittleEndian
	h := Header{Version: le.Uint32(b[offVersion:])}
	switch {
	case h.Version == 0:
		return Header{}, &HeaderError{Name: name, Off: offVersion, Msg: ErrNotReady.Error(), Err: ErrNotReady}
	case h.Version != Version:
		return bad(offVersion, "version %d; this build reads version %d", h.Version, Version)
	}
	if got, want := le.Uint32(b[offCRC:]), crc32.Checksum(b[:offCRC], castagnoli); got != want {
		return bad(offCRC, "checksum %#08x, the header's bytes sum to %#08x (corrupted, or written by something else)", got, want)
	}
	if n := le.Uint32(b[12:]); n != HeaderBytes {
		return bad(12, "header bytes %d, want %d", n, HeaderBytes)
	}
	u64 := func(off int) (int64, bool) {
		v := le.Uint64(b[off:])
		return int64(v), v <= math.MaxInt64
	}
	var ok bool
	if h.Size, ok = u64(16); !ok || h.Size != size {
		return bad(16, "segment size %d, but %d bytes are mapped", le.Uint64(b[16:]), size)
	}
	if h.Align, ok = u64(24); !ok || h.Align < minAlign || h.Align > maxAlign || bits.OnesCount64(uint64(h.Align)) != 1 {
		return bad(24, "alignment %d is not a power of two in [%d, %d]", le.Uint64(b[24:]), minAlign, maxAlign)
	}
	if h.Size%h.Align != 0 {
		return bad(16, "segment size %d is not a multiple of its alignment %d", h.Size, h.Align)
	}
	h.CreatorPID = int(le.Uint32(b[32:]))
	h.Backing = Backing(le.Uint32(b[36:]))
	if h.Backing < BackingFile || h.Backing > BackingMemfd {
		return bad(36, "unknown backing %d", uint32(h.Backing))
	}
	h.CreatorStart = le.Uint64(b[40:])
	h.CreatorBoot = le.Uint32(b[48:])
	h.CreatorSpace = le.Uint32(b[52:])
	h.CreatedNano = int64(le.Uint64(b[56:]))
	var err error
	if h.Slots, err = tableAt(b, 64, maxSlots, minSlotBytes, maxSlotBytes); err != nil {
		return bad(64, "participant slots: %v", err)
	}
	if h.Channels, err = tableAt(b, 80, maxChannels, minChanBytes, maxChanBytes); err != nil {
		return bad(80, "channels: %v", err)
	}
	if h.Extents, err = tableAt(b, 112, maxExtents, ExtentEntryBytes, ExtentEntryBytes); err != nil {
		return bad(112, "extent table: %v", err)
	}
	if h.ExtentSize, ok = u64(128); !ok || h.ExtentSize < minExtent || h.ExtentSize > maxExtent || bits.OnesCount64(uint64(h.ExtentSize)) != 1 {
		return bad(128, "extent size %d is not a power of two in [%d, %d]", le.Uint64(b[128:]), minExtent, int64(maxExtent))
	}
	if h.DataOff, ok = u64(96); !ok {
		return bad(96, "data offset %d out of range", le.Uint64(b[96:]))
	}
	if h.DataBytes, ok = u64(104); !ok {
		return bad(104, "data bytes %d out of range", le.Uint64(b[104:]))
	}
	for off := 136; off < offCRC; off++ {
		if b[off] != 0 {
			return bad(int64(off), "reserved byte is %#02x, want 0 (a newer layout?)", b[off])
		}
	}
	// The regions, in order, inside the segment, without overlap.
	end := int64(HeaderBytes)
	for _, r := range []struct {
		what      string
		at        int64
		off, size int64
	}{
		{"participant slots", 64, h.Slots.Off, h.Slots.Size()},
		{"channels", 80, h.Channels.Off, h.Channels.Size()},
		{"extent table", 112, h.Extents.Off, h.Extents.Size()},
		{"data", 96, h.DataOff, h.DataBytes},
	} {
		if r.off < end || r.off%8 != 0 || r.size > h.Size || r.off > h.Size-r.size {
			return bad(r.at, "%s at %d, %d bytes: not 8-byte aligned inside [%d, %d)", r.what, r.off, r.size, end, h.Size)
		}
		end = r.off + r.size
	}
	if h.DataOff%h.Align != 0 {
		return bad(96, "data offset %d is not a multiple of the alignment %d", h.DataOff, h.Align)
	}
	if int64(h.Extents.Count)*h.ExtentSize != h.DataBytes {
		return bad(112, "%d extents of %d bytes, but the data region is %d bytes", h.Extents.Count, h.ExtentSize, h.DataBytes)
	}
	return h, nil
}

// tableAt decodes a table descriptor (offset u64, count u32, bytes u32) at
// off and checks its limits.
func tableAt(b []byte, off, maxCount, minBytes, maxBytes int) (Region, error) {
	le := binary.LittleEndian
	o := le.Uint64(b[off:])
	n := le.Uint32(b[off+8:])
	sz := le.Uint32(b[off+12:])
	switch {
	case o > math.MaxInt64:
		return Region{}, fmt.Errorf("offset %d out of range", o)
	case n == 0 || n > uint32(maxCount):
		return Region{}, fmt.Errorf("count %d not in [1, %d]", n, maxCount)
	case sz < uint32(minBytes) || sz > uint32(maxBytes) || sz%8 != 0:
		return Region{}, fmt.Errorf("entry size %d not a multiple of 8 in [%d, %d]", sz, minBytes, maxBytes)
	}
	return Region{Off: int64(o), Count: int(n), Bytes: int(sz)}, nil
}

// Encode writes h's static part into b[:StaticBytes] with its checksum,
// version included; the caller stores the version bytes last (see
// storeVersion) when b is the live mapping.
func (h *Header) Encode(b []byte) {
	le := binary.LittleEndian
	clear(b[:StaticBytes])
	copy(b, Magic)
	le.PutUint32(b[offVersion:], h.Version)
	le.PutUint32(b[12:], HeaderBytes)
	le.PutUint64(b[16:], uint64(h.Size))
	le.PutUint64(b[24:], uint64(h.Align))
	le.PutUint32(b[32:], uint32(h.CreatorPID))
	le.PutUint32(b[36:], uint32(h.Backing))
	le.PutUint64(b[40:], h.CreatorStart)
	le.PutUint32(b[48:], h.CreatorBoot)
	le.PutUint32(b[52:], h.CreatorSpace)
	le.PutUint64(b[56:], uint64(h.CreatedNano))
	for _, t := range []struct {
		off int
		r   Region
	}{{64, h.Slots}, {80, h.Channels}, {112, h.Extents}} {
		le.PutUint64(b[t.off:], uint64(t.r.Off))
		le.PutUint32(b[t.off+8:], uint32(t.r.Count))
		le.PutUint32(b[t.off+12:], uint32(t.r.Bytes))
	}
	le.PutUint64(b[96:], uint64(h.DataOff))
	le.PutUint64(b[104:], uint64(h.DataBytes))
	le.PutUint64(b[128:], uint64(h.ExtentSize))
	le.PutUint32(b[offCRC:], crc32.Checksum(b[:offCRC], castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Layout is the default arrangement of a segment of size bytes aligned to
// align: the header page, the participant slots, the channel table, the
// extent table, then the data region from the next multiple of align to
// the end, cut into extents of extentSize (a power of two ≥ 1 MiB; 0 means
// DefaultExtentSize, or align when that is larger). What is left past the
// last whole extent is not used.
func Layout(size, align, extentSize int64) (Header, error) {
	if extentSize == 0 {
		extentSize = max(DefaultExtentSize, align)
	}
	if extentSize < minExtent || extentSize > maxExtent || bits.OnesCount64(uint64(extentSize)) != 1 || extentSize%align != 0 {
		return Header{}, fmt.Errorf("cxl: extent size %d: want a power of two in [1 MiB, 4 GiB], a multiple of the alignment %d", extentSize, align)
	}
	h := Header{
		Version:    Version,
		Size:       size,
		Align:      align,
		Slots:      Region{Off: HeaderBytes, Count: DefaultSlots, Bytes: SlotBytes},
		Channels:   Region{Count: DefaultChannels, Bytes: ChannelBytes},
		ExtentSize: extentSize,
	}
	h.Channels.Off = h.Slots.Off + h.Slots.Size()
	h.Extents = Region{Off: h.Channels.Off + h.Channels.Size(), Count: int(min(size/extentSize, maxExtents)), Bytes: ExtentEntryBytes}
	h.DataOff = roundUp(h.Extents.Off+h.Extents.Size(), align)
	n := (size - h.DataOff) / extentSize
	if h.DataOff >= size || n < 1 {
		return Header{}, fmt.Errorf("cxl: a segment of %d bytes has no room for one %d-byte extent of data after its %d bytes of tables (make it larger)", size, extentSize, h.DataOff)
	}
	h.Extents.Count = int(n)
	h.DataBytes = n * extentSize
	return h, nil
}

func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }

// The default table sizes.
const (
	DefaultSlots    = 64
	SlotBytes       = 128
	DefaultChannels = 64
	ChannelBytes    = 512
	// DefaultExtentSize is the unit in which processes claim the data
	// region: the arena's own extent size (buffers.MaxClassSize), so one
	// claim holds a whole span set of size classes.
	DefaultExtentSize = 4 << 20
	ExtentEntryBytes  = 16
)
