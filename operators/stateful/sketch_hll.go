package stateful

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"unsafe"
)

// HLL: the HyperLogLog sketch behind approx_count_distinct. It follows
// HLL++ (Heule, Nunkesser, Hall: "HyperLogLog in Practice", EDBT 2013) in
// its representation — a sparse set of (index, rank) pairs at precision 25
// while the set is small, 2^p one-byte registers once that set would take
// more memory than the registers — and Ertl ("New cardinality estimation
// algorithms for HyperLogLog sketches", arXiv:1702.01284) in its dense
// estimator, which corrects the small-range and large-range bias without
// HLL++'s empirical tables. While sparse, the estimate is linear counting
// over 2^25 slots: exact in practice up to the thousands where the set
// turns dense.
//
// The sparse set is an open-addressing table of 4-byte entries, at most
// three quarters full, doubling from 8 slots: an Add is one probe or a few,
// whether the hash is new or seen before. Memory: the zero HLL holds
// nothing; a sparse one 4 to 10.7 bytes per distinct index, at most 2^p
// bytes (so at most 2^p × 3/16 entries: 3072 at p = 14); a dense one 2^p
// bytes (16 KiB at p = 14). So a million groups of ten distinct values
// take about 115 MiB (a 64-byte table and the struct each), not 16 GiB of
// registers.
//
// DuckDB 1.5.6 keeps 2^6 = 64 one-byte registers per state with Ertl's
// estimator (its own HLL, which replaced the Redis one at p = 14 that
// earlier versions used): 64 bytes a group, a standard error of about
// 13 %. zflow defaults to p = 14 (0.81 %), sparse while that is smaller.
//
// A hash is mixed again (murmur3's 64-bit finalizer, a bijection) before
// its bits are used, so hashes whose high bits pick the partition
// (Partition) or weak hashes still spread over the registers. The hashes
// are the caller's; a sketch holds only what they produced, so a sketch
// written by MarshalBinary means something only to a process hashing
// values the same way (HashKey's seed is per process: spill files qualify,
// files kept across runs do not).

const (
	// DefaultHLLPrecision is the precision of the zero HLL: 2^14
	// registers, a standard error of 1.04/128 = 0.81 %.
	DefaultHLLPrecision = 14
	// MinHLLPrecision and MaxHLLPrecision bound NewHLL's precision.
	MinHLLPrecision = 4
	MaxHLLPrecision = 18

	hllSparseP     = 25              // the sparse set's index bits
	hllSparseRho   = 64 - hllSparseP // + 1: the largest rank a sparse entry holds
	hllRhoBits     = 6               // an entry is index<<6 | rank
	hllVersion     = 1               // MarshalBinary's format
	hllModeSparse  = 1               // the mode byte of a sparse state
	hllModeDense   = 2               // and of a dense one
	hllHeaderBytes = 7               // magic, version, precision, mode
	hllMinSparse   = 8               // the first size of the sparse table
	hllMagic       = "zHLL"          // the first bytes of a marshalled HLL
	hllStructBytes = int64(unsafe.Sizeof(HLL{}))
)

// HLL is a HyperLogLog sketch of a set of 64-bit hashes. The zero value is
// an empty sketch at DefaultHLLPrecision. It is not safe for concurrent
// use.
type HLL struct {
	// sparse is the table of index<<6 | rank entries at precision 25 while
	// dense is nil: a power of two slots, 0 in an empty one (a rank is at
	// least 1), one entry per index, found by linear probing from the
	// index's low bits.
	sparse []uint32
	// dense is the 2^p registers, once the sketch has turned dense.
	dense []uint8
	n     int32 // the entries in sparse
	p     uint8 // 0 in the zero value: DefaultHLLPrecision
}

// NewHLL makes an empty sketch of 2^precision registers, or says why the
// precision is out of range.
func NewHLL(precision int) (*HLL, error) {
	if precision < MinHLLPrecision || precision > MaxHLLPrecision {
		return nil, fmt.Errorf("stateful: hll precision %d out of range [%d, %d]", precision, MinHLLPrecision, MaxHLLPrecision)
	}
	return &HLL{p: uint8(precision)}, nil
}

// HLLStandardError is the relative standard error of a dense sketch of
// the given precision, 1.04/√(2^p). A sparse sketch does better.
func HLLStandardError(precision int) float64 {
	return 1.04 / math.Sqrt(float64(uint64(1)<<precision))
}

// Precision is the sketch's p.
func (h *HLL) Precision() int {
	if h.p == 0 {
		return DefaultHLLPrecision
	}
	return int(h.p)
}

// Sparse says whether the sketch still keeps the sparse set.
func (h *HLL) Sparse() bool { return h.dense == nil }

// Reset empties the sketch and lets its memory go; the precision stays.
func (h *HLL) Reset() { *h = HLL{p: h.p} }

// Bytes is the memory the sketch holds, its own struct included.
func (h *HLL) Bytes() int64 {
	return hllStructBytes + int64(cap(h.sparse))*4 + int64(cap(h.dense))
}

// mix64 is murmur3's 64-bit finalizer: a bijection whose every output bit
// depends on every input bit.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// Add adds one hash. It allocates only when the sparse table grows or
// turns dense.
func (h *HLL) Add(hash uint64) {
	x := mix64(hash)
	if h.dense != nil {
		p := uint(h.Precision())
		i := x >> (64 - p)
		r := uint8(bits.LeadingZeros64(x<<p|1<<(p-1))) + 1
		if r > h.dense[i] {
			h.dense[i] = r
		}
		return
	}
	h.addSparse(sparseEntry(x))
}

// AddBatch adds every hash of hashes.
func (h *HLL) AddBatch(hashes []uint64) {
	i := 0
	for ; i < len(hashes) && h.dense == nil; i++ {
		h.addSparse(sparseEntry(mix64(hashes[i])))
	}
	if i == len(hashes) {
		return
	}
	p := uint(h.Precision())
	reg := h.dense
	for _, hash := range hashes[i:] {
		x := mix64(hash)
		j := x >> (64 - p)
		r := uint8(bits.LeadingZeros64(x<<p|1<<(p-1))) + 1
		if r > reg[j] {
			reg[j] = r
		}
	}
}

// sparseEntry is a mixed hash's sparse entry: its top 25 bits, and the
// rank (leading zeros + 1) of the 39 after them.
func sparseEntry(x uint64) uint32 {
	r := uint32(bits.LeadingZeros64(x<<hllSparseP|1<<(hllSparseP-1))) + 1
	return uint32(x>>(64-hllSparseP))<<hllRhoBits | r
}

// denseOf is the register index and rank a sparse entry gives at
// precision p: the low 25-p bits of its index are the first bits after the
// register index.
func denseOf(e uint32, p uint) (int, uint8) {
	idx := e >> hllRhoBits
	extra := hllSparseP - p
	low := idx & (1<<extra - 1)
	if low != 0 {
		return int(idx >> extra), uint8(bits.LeadingZeros32(low<<(32-extra))) + 1
	}
	return int(idx >> extra), uint8(extra) + uint8(e&(1<<hllRhoBits-1))
}

// maxSlots is the most slots the sparse table may have: 4 bytes each, no
// more than the registers would take.
func (h *HLL) maxSlots() int { return max(1<<h.Precision()/4, 4) }

// maxSparse is the most entries the sparse table holds: three quarters of
// its most slots.
func (h *HLL) maxSparse() int { return h.maxSlots() / 4 * 3 }

// addSparse adds one entry while sparse: a new index is inserted, a known
// one keeps the higher rank. A table that would pass three quarters full
// doubles, or turns dense when that would pass maxSlots.
func (h *HLL) addSparse(e uint32) {
	for {
		mask := uint32(len(h.sparse) - 1)
		for i := (e >> hllRhoBits) & mask; len(h.sparse) > 0; i = (i + 1) & mask {
			s := h.sparse[i]
			if s == 0 {
				if int(h.n+1)*4 > len(h.sparse)*3 {
					break // full: grow, then insert
				}
				h.sparse[i] = e
				h.n++
				return
			}
			if s>>hllRhoBits == e>>hllRhoBits {
				if e > s {
					h.sparse[i] = e
				}
				return
			}
		}
		if !h.growSparse() {
			h.setDense(e)
			return
		}
	}
}

// growSparse doubles the sparse table, or turns the sketch dense when the
// doubled table would take more than the registers; it says which.
func (h *HLL) growSparse() bool {
	n := max(2*len(h.sparse), min(hllMinSparse, h.maxSlots()))
	if n > h.maxSlots() {
		h.toDense()
		return false
	}
	old := h.sparse
	h.sparse, h.n = make([]uint32, n), 0
	for _, e := range old {
		if e != 0 {
			h.insertNew(e)
		}
	}
	return true
}

// insertNew puts an entry whose index is not in the table into it, which
// has room.
func (h *HLL) insertNew(e uint32) {
	mask := uint32(len(h.sparse) - 1)
	i := (e >> hllRhoBits) & mask
	for h.sparse[i] != 0 {
		i = (i + 1) & mask
	}
	h.sparse[i] = e
	h.n++
}

// toDense turns the sparse table into registers.
func (h *HLL) toDense() {
	h.dense = make([]uint8, 1<<h.Precision())
	for _, e := range h.sparse {
		if e != 0 {
			h.setDense(e)
		}
	}
	h.sparse, h.n = nil, 0
}

// setDense raises the register a sparse entry names to its rank.
func (h *HLL) setDense(e uint32) {
	i, r := denseOf(e, uint(h.Precision()))
	if r > h.dense[i] {
		h.dense[i] = r
	}
}

// Merge adds every hash o has seen to h: h becomes the sketch of the union.
// o is only read. The precisions must be equal.
func (h *HLL) Merge(o *HLL) error {
	if h.Precision() != o.Precision() {
		return fmt.Errorf("stateful: merge an hll of precision %d into one of %d", o.Precision(), h.Precision())
	}
	if h == o {
		return nil // a set's union with itself
	}
	if o.dense == nil {
		for _, e := range o.sparse {
			if e == 0 {
				continue
			}
			if h.dense != nil {
				h.setDense(e)
			} else {
				h.addSparse(e)
			}
		}
		return nil
	}
	if h.dense == nil {
		h.toDense()
	}
	for i, r := range o.dense {
		if r > h.dense[i] {
			h.dense[i] = r
		}
	}
	return nil
}

// Estimate is the estimated number of distinct hashes added.
func (h *HLL) Estimate() uint64 {
	if h.dense == nil {
		// Linear counting over the 2^25 slots of the sparse index.
		const m = float64(1 << hllSparseP)
		k := float64(h.n)
		return uint64(math.Round(-m * math.Log1p(-k/m)))
	}
	p := h.Precision()
	q := 64 - p
	var c [66]uint32 // c[r]: the registers of rank r, 0..q+1
	for _, r := range h.dense {
		c[r]++
	}
	return uint64(math.Round(ertlEstimate(c[:q+2], 1<<p)))
}

// ertlEstimate is Ertl's improved raw estimator (his algorithm 6) from the
// histogram c of m registers' ranks.
func ertlEstimate(c []uint32, m int) float64 {
	q := len(c) - 2
	fm := float64(m)
	z := fm * hllTau(1-float64(c[q+1])/fm)
	for k := q; k >= 1; k-- {
		z = 0.5 * (z + float64(c[k]))
	}
	z += fm * hllSigma(float64(c[0])/fm)
	return fm * fm / (2 * math.Ln2 * z)
}

// hllSigma is Ertl's σ(x) = x + Σ_{k≥1} x^(2^k) 2^(k-1).
func hllSigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x *= x
		prev := z
		z += x * y
		y += y
		if z == prev {
			return z
		}
	}
}

// hllTau is Ertl's τ(x) = (1 - x - Σ_{k≥1} (1 - x^(2^-k))² 2^-k) / 3.
func hllTau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		prev := z
		y *= 0.5
		z -= (1 - x) * (1 - x) * y
		if z == prev {
			return z / 3
		}
	}
}

// MarshalBinary writes the sketch for a spill file: "zHLL", a version
// byte, the precision, a mode byte, then a sparse sketch's entry count
// and its ascending entries as uvarint deltas, or a dense one's 2^p
// registers.
func (h *HLL) MarshalBinary() ([]byte, error) { return h.AppendBinary(nil) }

// AppendBinary appends what MarshalBinary writes to b.
func (h *HLL) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, hllMagic...)
	b = append(b, hllVersion, uint8(h.Precision()))
	if h.dense != nil {
		b = append(b, hllModeDense)
		return append(b, h.dense...), nil
	}
	b = append(b, hllModeSparse)
	b = binary.AppendUvarint(b, uint64(h.n))
	es := make([]uint32, 0, h.n) // the entries go out ascending
	for _, e := range h.sparse {
		if e != 0 {
			es = append(es, e)
		}
	}
	slices.Sort(es)
	prev := uint32(0)
	for _, e := range es {
		b = binary.AppendUvarint(b, uint64(e-prev))
		prev = e
	}
	return b, nil
}

// UnmarshalBinary replaces the sketch by the one MarshalBinary wrote in b,
// or says what in b is wrong; on an error the sketch is left empty.
func (h *HLL) UnmarshalBinary(b []byte) error {
	p := h.p
	*h = HLL{p: p}
	if err := h.unmarshal(b); err != nil {
		*h = HLL{p: p}
		return fmt.Errorf("stateful: hll state of %d bytes: %w", len(b), err)
	}
	return nil
}

// checkSketchHeader checks the start every marshalled sketch has: its
// 4-byte magic, then its version byte, in a header of at least size bytes.
func checkSketchHeader(b []byte, magic string, version byte, size int) error {
	if len(b) < size {
		return fmt.Errorf("shorter than its %d-byte header", size)
	}
	if string(b[:4]) != magic {
		return fmt.Errorf("starts with %q, not %q", b[:4], magic)
	}
	if b[4] != version {
		return fmt.Errorf("version %d, this build reads %d", b[4], version)
	}
	return nil
}

func (h *HLL) unmarshal(b []byte) error {
	if err := checkSketchHeader(b, hllMagic, hllVersion, hllHeaderBytes); err != nil {
		return err
	}
	p := int(b[5])
	if p < MinHLLPrecision || p > MaxHLLPrecision {
		return fmt.Errorf("precision %d out of range [%d, %d]", p, MinHLLPrecision, MaxHLLPrecision)
	}
	h.p = uint8(p)
	body := b[hllHeaderBytes:]
	switch b[6] {
	case hllModeDense:
		if len(body) != 1<<p {
			return fmt.Errorf("dense with %d registers, precision %d has %d", len(body), p, 1<<p)
		}
		for i, r := range body {
			if int(r) > 65-p {
				return fmt.Errorf("register %d holds rank %d, the most at precision %d is %d", i, r, p, 65-p)
			}
		}
		h.dense = append(make([]uint8, 0, len(body)), body...)
		return nil
	case hllModeSparse:
		n, k := binary.Uvarint(body)
		if k <= 0 || k != uvarintLen(n) {
			return fmt.Errorf("sparse without a readable entry count")
		}
		body = body[k:]
		if n > uint64(h.maxSparse()) {
			return fmt.Errorf("sparse with %d entries, precision %d keeps at most %d", n, p, h.maxSparse())
		}
		size := min(hllMinSparse, h.maxSlots())
		for int(n)*4 > size*3 {
			size *= 2
		}
		h.sparse = make([]uint32, size)
		prev := uint64(0)
		for i := range int(n) {
			d, k := binary.Uvarint(body)
			if k <= 0 || k != uvarintLen(d) {
				return fmt.Errorf("sparse entry %d of %d unreadable", i+1, n)
			}
			body = body[k:]
			e := prev + d
			if (i > 0 && d == 0) || e >= 1<<(hllSparseP+hllRhoBits) {
				return fmt.Errorf("sparse entry %d of %d (%d) not above the one before (%d) or out of range", i+1, n, e, prev)
			}
			if i > 0 && e>>hllRhoBits == prev>>hllRhoBits {
				return fmt.Errorf("sparse entries %d and %d have the same index %d", i, i+1, e>>hllRhoBits)
			}
			if r := e & (1<<hllRhoBits - 1); r == 0 || r > hllSparseRho+1 {
				return fmt.Errorf("sparse entry %d of %d has rank %d, want 1 to %d", i+1, n, r, hllSparseRho+1)
			}
			h.insertNew(uint32(e))
			prev = e
		}
		if len(body) != 0 {
			return fmt.Errorf("%d bytes after the last sparse entry", len(body))
		}
		return nil
	default:
		return fmt.Errorf("mode byte %d is neither sparse (%d) nor dense (%d)", b[6], hllModeSparse, hllModeDense)
	}
}
