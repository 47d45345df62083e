package expr

import (
	"encoding/binary"
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
)

// maxSmallIn is the longest constant string list that inStrNode looks up in
// its own hash set; longer lists use arrow's hash-based is_in kernel.
const maxSmallIn = 256

// inStrNode is x IN ('a', 'b', ...) for a constant list of strings.
// As in SQL, a row is NULL when x is NULL, or when it matched nothing and
// the list holds a NULL.
type inStrNode struct {
	x       node
	set     strSet
	hasNull bool
}

// strSet is an open-addressing hash set of a few strings, built once at
// Compile time and read-only afterwards. A row's key is its length and its
// first and last eight bytes (loaded as two uint64 words), which is the
// whole string up to 16 bytes: for short strings (symbols, codes) a probe
// is two word compares and no byte loop, and a miss usually stops at the
// first, empty, slot. Longer strings compare their middle bytes too.
type strSet struct {
	slots []strSlot // power-of-two length, at most a quarter full
	shift uint8     // 64 - log2(len(slots))
	lens  uint64    // bit l set when a member has length l (l < 64), or bit 63 for any l >= 63
}

type strSlot struct {
	w0, w1 uint64
	n      int32 // length; -1 for an empty slot
	s      string
}

// strWords returns the key words of v: its first eight bytes and its last
// eight bytes beyond the first eight, little-endian, zero-padded. data and
// off let it load a whole word when the buffer allows, v = data[off:off+len].
func strWords(data []byte, off, n int) (w0, w1 uint64) {
	switch {
	case n >= 8:
		w0 = binary.LittleEndian.Uint64(data[off:])
		if n > 8 {
			if n >= 16 {
				w1 = binary.LittleEndian.Uint64(data[off+n-8:])
			} else {
				// Bytes 8..n-1, loaded from the last word and shifted down.
				w1 = binary.LittleEndian.Uint64(data[off+n-8:]) >> (8 * (16 - n))
			}
		}
	case off+8 <= len(data):
		w0 = binary.LittleEndian.Uint64(data[off:]) & (1<<(8*n) - 1)
	default:
		for i := n - 1; i >= 0; i-- {
			w0 = w0<<8 | uint64(data[off+i])
		}
	}
	return w0, w1
}

func strHash(w0, w1 uint64, n int, shift uint8) int {
	h := (w0 ^ bits.RotateLeft64(w1, 29) ^ uint64(n)<<57) * 0x9E3779B97F4A7C15
	h ^= h >> 32
	return int((h * 0xD6E8FEB86659FD93) >> shift)
}

func lenBit(n int) uint64 { return 1 << min(n, 63) }

// newStrSet builds the set of list (duplicates allowed).
func newStrSet(list []string) strSet {
	size := 8
	for size < 4*len(list) {
		size *= 2
	}
	s := strSet{slots: make([]strSlot, size), shift: uint8(64 - bits.TrailingZeros(uint(size)))}
	for i := range s.slots {
		s.slots[i].n = -1
	}
	for _, v := range list {
		if s.has([]byte(v), 0, len(v)) {
			continue
		}
		w0, w1 := strWords([]byte(v), 0, len(v))
		j := strHash(w0, w1, len(v), s.shift)
		for s.slots[j].n >= 0 {
			j = (j + 1) & (size - 1)
		}
		s.slots[j] = strSlot{w0: w0, w1: w1, n: int32(len(v)), s: v}
		s.lens |= lenBit(len(v))
	}
	return s
}

// has reports whether data[off:off+n] is in the set.
func (s *strSet) has(data []byte, off, n int) bool {
	if s.lens&lenBit(n) == 0 {
		return false
	}
	w0, w1 := strWords(data, off, n)
	mask := len(s.slots) - 1
	for j := strHash(w0, w1, n, s.shift); ; j = (j + 1) & mask {
		e := &s.slots[j]
		if e.n < 0 {
			return false
		}
		if int(e.n) == n && e.w0 == w0 && e.w1 == w1 && (n <= 16 || string(data[off+8:off+n-8]) == e.s[8:n-8]) {
			return true
		}
	}
}

func (n *inStrNode) dtype() arrow.DataType { return tBool }

func (n *inStrNode) eval(ev *evaluator) (value, error) {
	x, err := n.x.eval(ev)
	if err != nil {
		return value{}, err
	}
	arr, err := ev.materialize(x)
	if err != nil {
		x.release()
		return value{}, err
	}
	defer arr.Release()
	s := arr.(*array.String)
	rows := s.Len()
	offs, data := stringParts(s)
	out := newBuffer(ev.mem, int(bitutil.BytesForBits(int64(rows))))
	ob := out.Bytes()
	set := &n.set
	var acc byte
	for i := 0; i < rows; i++ {
		o := int(offs[i])
		if set.has(data, o, int(offs[i+1])-o) {
			acc |= 1 << (i & 7)
		}
		if i&7 == 7 {
			ob[i>>3] = acc
			acc = 0
		}
	}
	if rows&7 != 0 {
		ob[rows>>3] = acc
	}
	if !n.hasNull {
		return value{arr: finishLike(ev.mem, tBool, s, out)}, nil
	}
	// Unmatched rows are NULL: validity = x's validity AND matched.
	valid := newValidity(ev.mem, rows, s)
	vb := valid.Bytes()
	for i := range vb {
		vb[i] &= ob[i]
	}
	return value{arr: finish(tBool, rows, valid, out)}, nil
}
