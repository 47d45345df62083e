// Package ascii tells whether bytes are 7-bit ASCII, eight at a time.
// Every slice of ASCII bytes is valid UTF-8 and has one byte per
// character, which lets string code (the expression language's upper and
// lower, the arrow source's validation) skip per-value UTF-8 work.
package ascii

import "encoding/binary"

// Is reports whether every byte of b is below 0x80.
func Is(b []byte) bool {
	var acc uint64
	for len(b) >= 32 {
		acc |= binary.LittleEndian.Uint64(b) | binary.LittleEndian.Uint64(b[8:]) |
			binary.LittleEndian.Uint64(b[16:]) | binary.LittleEndian.Uint64(b[24:])
		b = b[32:]
	}
	for len(b) >= 8 {
		acc |= binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	for _, c := range b {
		acc |= uint64(c)
	}
	return acc&0x8080808080808080 == 0
}
