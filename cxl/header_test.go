package cxl

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

func testHeader(t testing.TB) (Header, []byte) {
	t.Helper()
	h, err := Layout(64<<20, 2<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.Backing, h.CreatorPID, h.CreatorStart, h.CreatedNano = BackingHugetlbfs, 42, 12345, 1700000000
	b := make([]byte, HeaderBytes)
	h.Encode(b)
	return h, b
}

func TestHeaderRoundTrip(t *testing.T) {
	h, b := testHeader(t)
	got, err := DecodeHeader("seg", b, h.Size)
	if err != nil {
		t.Fatal(err)
	}
	if got != h {
		t.Fatalf("decoded %+v\nwant    %+v", got, h)
	}
	if h.DataOff%h.Align != 0 || h.DataOff+h.DataBytes > h.Size || h.DataBytes != int64(h.Extents.Count)*h.ExtentSize {
		t.Errorf("data region %d+%d in %d aligned %d", h.DataOff, h.DataBytes, h.Size, h.Align)
	}
}

// TestHeaderRefusals: each way a header can be wrong is refused with the
// offset of the field, and a checksum that still matches (as a writer of
// bad values would make) does not let a bad field through.
func TestHeaderRefusals(t *testing.T) {
	h, good := testHeader(t)
	le := binary.LittleEndian
	for _, tc := range []struct {
		name  string
		edit  func(b []byte)
		off   int64
		is    error
		resum bool // recompute the checksum after the edit
	}{
		{"magic", func(b []byte) { b[0] = 'X' }, 0, ErrNotSegment, false},
		{"not ready", func(b []byte) { le.PutUint32(b[8:], 0) }, 8, ErrNotReady, false},
		{"newer version", func(b []byte) { le.PutUint32(b[8:], Version+1) }, 8, nil, true},
		{"flipped byte", func(b []byte) { b[70] ^= 1 }, offCRC, nil, false},
		{"header bytes", func(b []byte) { le.PutUint32(b[12:], 8192) }, 12, nil, true},
		{"size", func(b []byte) { le.PutUint64(b[16:], uint64(h.Size)*2) }, 16, nil, true},
		{"huge size", func(b []byte) { le.PutUint64(b[16:], 1<<63) }, 16, nil, true},
		{"align not pow2", func(b []byte) { le.PutUint64(b[24:], 3<<20) }, 24, nil, true},
		{"align small", func(b []byte) { le.PutUint64(b[24:], 512) }, 24, nil, true},
		{"backing", func(b []byte) { le.PutUint32(b[36:], 9) }, 36, nil, true},
		{"no slots", func(b []byte) { le.PutUint32(b[72:], 0) }, 64, nil, true},
		{"slot size", func(b []byte) { le.PutUint32(b[76:], 12) }, 64, nil, true},
		{"slots overlap header", func(b []byte) { le.PutUint64(b[64:], 100) }, 64, nil, true},
		{"channels past end", func(b []byte) { le.PutUint64(b[80:], uint64(h.Size)) }, 80, nil, true},
		{"channels wrap", func(b []byte) { le.PutUint64(b[80:], 1<<63-8) }, 80, nil, true},
		{"data misaligned", func(b []byte) {
			le.PutUint64(b[96:], uint64(h.DataOff+8))
			le.PutUint64(b[104:], uint64(h.DataBytes-8))
		}, 96, nil, true},
		{"data too long", func(b []byte) { le.PutUint64(b[104:], uint64(h.Size)) }, 96, nil, true},
		{"data wraps", func(b []byte) { le.PutUint64(b[104:], 1<<63-1) }, 96, nil, true},
		{"reserved", func(b []byte) { b[200] = 1 }, 200, nil, true},
		{"extent count", func(b []byte) { le.PutUint32(b[120:], uint32(h.Extents.Count+1)) }, 112, nil, true},
		{"extent entry", func(b []byte) { le.PutUint32(b[124:], 8) }, 112, nil, true},
		{"extent size", func(b []byte) { le.PutUint64(b[128:], 3<<20) }, 128, nil, true},
		{"extent size vs data", func(b []byte) { le.PutUint64(b[128:], 2<<20) }, 112, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := append([]byte(nil), good...)
			tc.edit(b)
			if tc.resum {
				le.PutUint32(b[offCRC:], crc32.Checksum(b[:offCRC], castagnoli))
			}
			_, err := DecodeHeader("/dev/shm/seg", b, h.Size)
			var he *HeaderError
			if !errors.As(err, &he) {
				t.Fatalf("error %v, want a *HeaderError", err)
			}
			if he.Off != tc.off || he.Name != "/dev/shm/seg" {
				t.Errorf("error at offset %d of %q, want %d: %v", he.Off, he.Name, tc.off, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
		})
	}
	if _, err := DecodeHeader("seg", good[:100], h.Size); !errors.Is(err, ErrNotSegment) {
		t.Errorf("short header: %v", err)
	}
}

func TestLayoutTooSmall(t *testing.T) {
	if _, err := Layout(4<<20, 4096, 0); err == nil {
		t.Error("a 4 MiB segment has room for tables and a 4 MiB extent")
	}
	if _, err := Layout(64<<20, 2<<20, 3<<20); err == nil {
		t.Error("an extent size that is not a power of two")
	}
	h, err := Layout(4<<20+64<<10, 4096, 0)
	if err != nil || h.Extents.Count != 1 || h.DataBytes != 4<<20 {
		t.Errorf("smallest segment: %+v %v", h, err)
	}
}

// FuzzHeader: no input makes DecodeHeader panic, and whatever it accepts
// describes regions inside the segment that encode back to the same bytes.
func FuzzHeader(f *testing.F) {
	_, b := testHeader(f)
	f.Add(b[:StaticBytes], int64(64<<20))
	f.Add(b[:StaticBytes], int64(0))
	f.Add([]byte(Magic), int64(4096))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		h, err := DecodeHeader("fuzz", b, size)
		if err != nil {
			return
		}
		for _, r := range [][2]int64{{h.Slots.Off, h.Slots.Size()}, {h.Channels.Off, h.Channels.Size()}, {h.Extents.Off, h.Extents.Size()}, {h.DataOff, h.DataBytes}} {
			if r[0] < HeaderBytes || r[1] < 0 || r[0]+r[1] > h.Size || r[0]+r[1] < r[0] {
				t.Fatalf("accepted region %d+%d outside a segment of %d", r[0], r[1], h.Size)
			}
		}
		again := make([]byte, StaticBytes)
		h.Encode(again)
		if string(again) != string(b[:StaticBytes]) {
			t.Fatalf("accepted header does not encode back to its bytes")
		}
	})
}
