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

// strSet is a hash set of constant strings, built once at Compile time and
// read-only afterwards. A row's key is its length and its first and last
// eight bytes (loaded as two uint64 words), which is the whole string up to
// 16 bytes: for short strings (symbols, codes) a lookup is a hash and two
// word compares, with no byte loop. Compile searches for a hash seed under
// which every member sits in its own slot (a perfect hash; found quickly for
// the few dozen strings an IN list usually holds), so a lookup reads one slot
// and does not branch on the data; a longer list that finds no such seed
// falls back to linear probing. Strings over 16 bytes compare their middle
// bytes too.
type strSet struct {
	slots   []strSlot // power-of-two length
	shift   uint8     // 64 - log2(len(slots))
	seed    uint64
	perfect bool // every member is in its home slot
}

type strSlot struct {
	w0, w1 uint64
	n      int // length; -1 for an empty slot
	s      string
}

// strWords returns the key words of data[off:off+n]: its first eight bytes
// and its bytes past the eighth, up to the last eight, little-endian and
// zero-padded. It loads whole words where the buffer allows.
func strWords(data []byte, off, n int) (w0, w1 uint64) {
	switch {
	case n >= 8:
		w0 = binary.LittleEndian.Uint64(data[off:])
		if n >= 16 {
			w1 = binary.LittleEndian.Uint64(data[off+n-8:])
		} else if n > 8 {
			// Bytes 8..n-1: the top of the last word.
			w1 = binary.LittleEndian.Uint64(data[off+n-8:]) >> (8 * (16 - n))
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

func (s *strSet) hash(w0, w1 uint64, n int) int {
	// Multiply-shift: the top bits of the product depend on every bit of
	// the key; Compile picks the seed that makes it perfect for the list.
	h := (w0 ^ bits.RotateLeft64(w1, 29) ^ uint64(n)<<57 ^ s.seed) * 0x9E3779B97F4A7C15
	return int(h >> s.shift)
}

// newStrSet builds the set of list (duplicates allowed).
func newStrSet(list []string) strSet {
	seen := make(map[string]bool, len(list))
	uniq := make([]string, 0, len(list))
	for _, v := range list {
		if !seen[v] {
			seen[v] = true
			uniq = append(uniq, v)
		}
	}
	size := 8
	for size < 2*len(uniq) {
		size *= 2
	}
	// Look for a perfect seed in tables of 2 to 16 slots per member; past 64
	// members one is unlikely to exist.
	if len(uniq) <= 64 {
		for sz := size; sz <= 16*size; sz *= 2 {
			for seed := uint64(0); seed < 64; seed++ {
				if s, ok := buildStrSet(uniq, sz, seed, true); ok {
					return s
				}
			}
		}
	}
	s, _ := buildStrSet(uniq, 2*size, 0, false)
	return s
}

// buildStrSet places list (distinct strings) in a table of size slots; with
// perfect, it fails when two members share a home slot.
func buildStrSet(list []string, size int, seed uint64, perfect bool) (strSet, bool) {
	s := strSet{slots: make([]strSlot, size), shift: uint8(64 - bits.TrailingZeros(uint(size))), seed: seed, perfect: perfect}
	for i := range s.slots {
		s.slots[i].n = -1
	}
	for _, v := range list {
		w0, w1 := strWords([]byte(v), 0, len(v))
		j := s.hash(w0, w1, len(v))
		for s.slots[j].n >= 0 {
			if perfect {
				return strSet{}, false
			}
			j = (j + 1) & (size - 1)
		}
		s.slots[j] = strSlot{w0: w0, w1: w1, n: len(v), s: v}
	}
	return s, true
}

// has reports whether data[off:off+n] is in the set.
func (s *strSet) has(data []byte, off, n int) bool {
	w0, w1 := strWords(data, off, n)
	j := s.hash(w0, w1, n)
	if s.perfect {
		e := &s.slots[j]
		return e.n == n && e.w0 == w0 && e.w1 == w1 && (n <= 16 || string(data[off+8:off+n-8]) == e.s[8:n-8])
	}
	for mask := len(s.slots) - 1; ; j = (j + 1) & mask {
		e := &s.slots[j]
		if e.n < 0 {
			return false
		}
		if e.n == n && e.w0 == w0 && e.w1 == w1 && (n <= 16 || string(data[off+8:off+n-8]) == e.s[8:n-8]) {
			return true
		}
	}
}

// hasShort is has for a perfect set and n <= 16, without branches on the
// data once the words are loaded.
func (s *strSet) hasShort(data []byte, off, n int) uint64 {
	w0, w1 := strWords(data, off, n)
	e := &s.slots[s.hash(w0, w1, n)]
	return b2u((e.w0^w0)|(e.w1^w1)|uint64(e.n^n) == 0)
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func (n *inStrNode) dtype() arrow.DataType { return tBool }

func (n *inStrNode) eval(ev *evaluator) (value, error) {
	arr, err := ev.evalArray(n.x)
	if err != nil {
		return value{}, err
	}
	defer arr.Release()
	s := arr.(*array.String)
	rows := s.Len()
	offs, data := stringParts(s)
	out := newBuffer(ev.mem, int(bitutil.BytesForBits(int64(rows))))
	ob := out.Bytes()
	set := &n.set
	var acc uint64
	for i := 0; i < rows; i++ {
		o, l := int(offs[i]), int(offs[i+1]-offs[i])
		var hit uint64
		switch {
		case set.perfect && l <= 8 && o+8 <= len(data):
			// The common case, inlined: one word, one slot.
			w0 := binary.LittleEndian.Uint64(data[o:]) & (uint64(1)<<(8*l) - 1)
			e := &set.slots[set.hash(w0, 0, l)]
			hit = b2u(e.w0^w0|e.w1|uint64(e.n^l) == 0)
		case set.perfect && l <= 16:
			hit = set.hasShort(data, o, l)
		default:
			hit = b2u(set.has(data, o, l))
		}
		acc |= hit << (i & 63)
		if i&63 == 63 {
			binary.LittleEndian.PutUint64(ob[i>>6<<3:], acc)
			acc = 0
		}
	}
	for k := rows &^ 63; k < rows; k += 8 {
		ob[k>>3] = byte(acc)
		acc >>= 8
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
