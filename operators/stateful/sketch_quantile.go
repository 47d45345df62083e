package stateful

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"
)

// TDigest: the quantile sketch behind approx_quantile, Dunning's merging
// t-digest (Dunning, Ertl: "Computing Extremely Accurate Quantiles Using
// t-Digests", arXiv:1902.04023) with the arcsine scale function k1 and
// compression δ = 100 — what DuckDB's approx_quantile runs (its
// third_party/tdigest, compression 100), chosen over KLL for three reasons:
//
//   - the oracle agrees: on fewer than about 64 values nothing is merged
//     and both answer the same interpolation of the exact data, and on
//     more both have the same error profile;
//   - the tails are sharp: k1 keeps centroids near q = 0 and 1 tiny, so
//     p99 and p999 (latencies, the quantiles users ask for) come out within
//     a fraction of the rank error at the median, where KLL's error is the
//     same ±ε·n everywhere;
//   - memory per group: at most about 2δ centroids of 16 bytes once
//     compressed, plus a buffer of raw values that grows with the group.
//
// What it gives up is a worst-case guarantee: KLL's ε ≈ 1.65/k holds for
// any input, the t-digest's bound is measured (see doc.go for the figures
// and the inputs they were measured on).
//
// Semantics, as DuckDB's approx_quantile: values that are not finite
// (NaN, ±Inf) are skipped and not counted; a digest of no values has no
// quantile (NaN here, NULL in SQL); Quantile(0) is the exact minimum,
// Quantile(1) the exact maximum; in between, the answer is the linear
// interpolation between centroid means placed at their centroid's middle
// rank — on unmerged data that is the Hazen quantile (Hyndman and Fan's
// type 5): the i-th smallest of n values (from 0) sits at rank i + 0.5,
// below 0.5 the answer is the minimum, above n - 0.5 the maximum. DuckDB
// reads q as a FLOAT (0.4 is 0.4000000059604645) and casts the double back
// to an integer input's type rounding half to even; those are the
// caller's to copy. Two differences, both DuckDB's slips: DuckDB starts
// its maximum at the smallest positive double, so on all-negative data its
// upper quantiles come out as 2.2e-308 (seen in 1.5.6), and above the last
// centroid's middle it jumps to the maximum instead of interpolating; here
// the maximum is the maximum and both tails interpolate alike.

const (
	// DefaultTDigestCompression is δ of the zero TDigest, DuckDB's.
	DefaultTDigestCompression = 100
	// MinTDigestCompression and MaxTDigestCompression bound NewTDigest's δ.
	MinTDigestCompression = 10
	MaxTDigestCompression = 10000

	tdigestVersion     = 1
	tdigestMagic       = "zTDG"
	tdigestHeaderBytes = 4 + 1 + 8 + 8 + 8 + 8 // magic, version, δ, count, min, max
	tdigestFirstBuffer = 8                     // the first capacity of the value buffer
	// tdigestBufferPerDelta: the value buffer holds at most 5δ values
	// (4 KiB at δ = 100) before they are merged into the centroids.
	tdigestBufferPerDelta = 5
	tdigestStructBytes    = int64(unsafe.Sizeof(TDigest{}))
)

type centroid struct{ mean, weight float64 }

// TDigest is a t-digest of float64 values. The zero value is an empty
// digest of DefaultTDigestCompression. It is not safe for concurrent use;
// Quantile merges buffered values, so it too writes.
type TDigest struct {
	c   []centroid // the merged centroids, ascending by mean
	buf []float64  // values added since the last merge, in arrival order
	cw  float64    // the weight in c
	n   uint64     // values added (finite ones), = cw + len(buf)
	min float64    // the least and greatest value added, when n > 0
	max float64
	// delta is the compression, 0 in the zero value: the default.
	delta float64
}

// NewTDigest makes an empty digest of compression δ, or says why δ is out
// of range. More δ is more centroids: more memory and less error.
func NewTDigest(compression float64) (*TDigest, error) {
	if !(compression >= MinTDigestCompression && compression <= MaxTDigestCompression) {
		return nil, fmt.Errorf("stateful: t-digest compression %g out of range [%d, %d]", compression, MinTDigestCompression, MaxTDigestCompression)
	}
	return &TDigest{delta: compression}, nil
}

// Compression is the digest's δ.
func (t *TDigest) Compression() float64 {
	if t.delta == 0 {
		return DefaultTDigestCompression
	}
	return t.delta
}

// Count is the number of values added (NaN and ±Inf are not).
func (t *TDigest) Count() uint64 { return t.n }

// Min and Max are the least and greatest value added; NaN when none was.
func (t *TDigest) Min() float64 {
	if t.n == 0 {
		return math.NaN()
	}
	return t.min
}

// Max: see Min.
func (t *TDigest) Max() float64 {
	if t.n == 0 {
		return math.NaN()
	}
	return t.max
}

// Reset empties the digest and lets its memory go; δ stays.
func (t *TDigest) Reset() { *t = TDigest{delta: t.delta} }

// Bytes is the memory the digest holds, its own struct included.
func (t *TDigest) Bytes() int64 {
	return tdigestStructBytes + int64(cap(t.c))*int64(unsafe.Sizeof(centroid{})) + int64(cap(t.buf))*8
}

func (t *TDigest) maxBuffer() int { return tdigestBufferPerDelta * int(t.Compression()) }

// Add adds one value; NaN and ±Inf are skipped. It allocates only while
// the value buffer grows (doubling from 8 to 5δ) and while the centroid
// slice does, which stops once the digest holds its most centroids.
func (t *TDigest) Add(x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	if len(t.buf) == cap(t.buf) {
		t.makeRoom()
	}
	t.buf = append(t.buf, x)
	if t.n == 0 {
		t.min, t.max = x, x
	} else if x < t.min {
		t.min = x
	} else if x > t.max {
		t.max = x
	}
	t.n++
}

// AddBatch adds every value of xs.
func (t *TDigest) AddBatch(xs []float64) {
	for _, x := range xs {
		t.Add(x)
	}
}

// makeRoom is called with a full buffer: it grows it, or merges it into
// the centroids once it holds 5δ values.
func (t *TDigest) makeRoom() {
	if c := cap(t.buf); c < t.maxBuffer() {
		n := min(max(2*c, tdigestFirstBuffer), t.maxBuffer())
		t.buf = append(make([]float64, 0, n), t.buf...)
		return
	}
	t.process(nil)
}

// Merge adds every value o has seen to t (in o's centroids: a merge of
// digests is a digest of the union within the same error, not the exact
// digest of it). o is only read.
func (t *TDigest) Merge(o *TDigest) error {
	if t == o {
		return fmt.Errorf("stateful: merge a t-digest into itself")
	}
	if o.n == 0 {
		return nil
	}
	for _, x := range o.buf {
		t.Add(x)
	}
	if len(o.c) == 0 {
		return nil
	}
	if t.n == 0 {
		t.min, t.max = o.min, o.max
	} else {
		t.min, t.max = min(t.min, o.min), max(t.max, o.max)
	}
	t.n += uint64(o.cw)
	t.process(o.c)
	return nil
}

// integratedQ is the quantile where the scale k1 reaches k: q(k) =
// (sin(k π/δ - π/2) + 1) / 2.
func integratedQ(k, delta float64) float64 {
	return (math.Sin(min(k, delta)*math.Pi/delta-math.Pi/2) + 1) / 2
}

// integratedK is k1(q) = δ (asin(2q - 1) + π/2) / π.
func integratedK(q, delta float64) float64 {
	return delta * (math.Asin(2*q-1) + math.Pi/2) / math.Pi
}

// process merges the buffered values and the centroids of extra (sorted,
// their weight already counted in t.n) into t's centroids: one pass over
// the three sorted runs, each output centroid closed when the next input
// would make it span more than one unit of k1.
func (t *TDigest) process(extra []centroid) {
	slices.Sort(t.buf)
	old, vals := t.c, t.buf
	total := t.cw + float64(len(vals))
	for _, e := range extra {
		total += e.weight
	}
	delta := t.Compression()
	// The output is appended after the old centroids and moved down at
	// the end; the slice's capacity settles at about twice the most
	// centroids, so a digest in steady state merges without allocating.
	base := len(old)
	out := old
	var wSoFar, wLimit float64
	i, j, k := 0, 0, 0
	for {
		var x centroid
		switch {
		case i < len(old) && (j == len(vals) || old[i].mean <= vals[j]) && (k == len(extra) || old[i].mean <= extra[k].mean):
			x = old[i]
			i++
		case j < len(vals) && (k == len(extra) || vals[j] <= extra[k].mean):
			x = centroid{vals[j], 1}
			j++
		case k < len(extra):
			x = extra[k]
			k++
		default:
			t.c = append(out[:0], out[base:]...)
			t.cw = total
			t.buf = t.buf[:0]
			return
		}
		if len(out) == base {
			out = append(out, x)
			wSoFar = x.weight
			wLimit = total * integratedQ(1, delta)
			continue
		}
		if wSoFar+x.weight <= wLimit {
			last := &out[len(out)-1]
			m := last.mean
			last.weight += x.weight
			last.mean += x.weight * (x.mean - m) / last.weight
			// Rounding must not carry a mean past the values it averages
			// (UnmarshalBinary holds every mean within [min, max], in order).
			last.mean = min(max(last.mean, m), x.mean)
			wSoFar += x.weight
			continue
		}
		wLimit = total * integratedQ(integratedK(wSoFar/total, delta)+1, delta)
		wSoFar += x.weight
		out = append(out, x)
	}
}

// Quantile is the value at quantile q ∈ [0, 1] of the values added, or
// NaN when there are none or q is outside [0, 1].
func (t *TDigest) Quantile(q float64) float64 {
	if t.n == 0 || !(q >= 0 && q <= 1) {
		return math.NaN()
	}
	if len(t.buf) > 0 {
		t.process(nil)
	}
	c := t.c
	if len(c) == 1 {
		return c[0].mean
	}
	idx := q * t.cw
	first, last := c[0], c[len(c)-1]
	// Below the first centroid's middle rank the answer runs from the
	// minimum to its mean, above the last one's from its mean to the
	// maximum.
	if idx <= first.weight/2 {
		return between(t.min, first.weight-2*idx, first.mean, 2*idx)
	}
	if r := t.cw - idx; r <= last.weight/2 {
		return between(last.mean, 2*r, t.max, last.weight-2*r)
	}
	lo := first.weight / 2 // the middle rank of c[i-1]
	for i := 1; i < len(c); i++ {
		hi := lo + (c[i-1].weight+c[i].weight)/2
		if idx <= hi {
			return between(c[i-1].mean, hi-idx, c[i].mean, idx-lo)
		}
		lo = hi
	}
	return t.max // not reached: idx < cw - last.weight/2
}

// between is the average of x1 and x2 weighted w1 and w2, held between
// them against rounding.
func between(x1, w1, x2, w2 float64) float64 {
	x := (x1*w1 + x2*w2) / (w1 + w2)
	return max(min(x1, x2), min(x, max(x1, x2)))
}

// MarshalBinary writes the digest for a spill file, buffered values
// merged first: "zTDG", a version byte, δ, the count, the minimum and the
// maximum (float64s and uint64 little-endian), the number of centroids as
// a uvarint, then each centroid's mean (float64) and weight (uvarint).
func (t *TDigest) MarshalBinary() ([]byte, error) { return t.AppendBinary(nil) }

// AppendBinary appends what MarshalBinary writes to b.
func (t *TDigest) AppendBinary(b []byte) ([]byte, error) {
	if len(t.buf) > 0 {
		t.process(nil)
	}
	b = append(b, tdigestMagic...)
	b = append(b, tdigestVersion)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(t.Compression()))
	b = binary.LittleEndian.AppendUint64(b, t.n)
	lo, hi := t.min, t.max
	if t.n == 0 {
		lo, hi = 0, 0
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(lo))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(hi))
	b = binary.AppendUvarint(b, uint64(len(t.c)))
	for _, c := range t.c {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.mean))
		b = binary.AppendUvarint(b, uint64(c.weight))
	}
	return b, nil
}

// tdigestMaxCount bounds a read digest's count: weights add up exactly in
// float64 below 2^53.
const tdigestMaxCount = 1 << 53

// UnmarshalBinary replaces the digest by the one MarshalBinary wrote in b,
// or says what in b is wrong; on an error the digest is left empty.
func (t *TDigest) UnmarshalBinary(b []byte) error {
	delta := t.delta
	if err := t.unmarshal(b); err != nil {
		*t = TDigest{delta: delta}
		return fmt.Errorf("stateful: t-digest state of %d bytes: %w", len(b), err)
	}
	return nil
}

func (t *TDigest) unmarshal(b []byte) error {
	if err := checkSketchHeader(b, tdigestMagic, tdigestVersion, tdigestHeaderBytes+1); err != nil {
		return err
	}
	le := binary.LittleEndian
	delta := math.Float64frombits(le.Uint64(b[5:]))
	n := le.Uint64(b[13:])
	lo, hi := math.Float64frombits(le.Uint64(b[21:])), math.Float64frombits(le.Uint64(b[29:]))
	if !(delta >= MinTDigestCompression && delta <= MaxTDigestCompression) {
		return fmt.Errorf("compression %g out of range [%d, %d]", delta, MinTDigestCompression, MaxTDigestCompression)
	}
	if n > tdigestMaxCount {
		return fmt.Errorf("count %d above 2^53", n)
	}
	if n > 0 && !(lo <= hi && !math.IsInf(lo, 0) && !math.IsInf(hi, 0)) {
		return fmt.Errorf("minimum %g and maximum %g of %d values", lo, hi, n)
	}
	if n == 0 && (lo != 0 || hi != 0) {
		return fmt.Errorf("empty with minimum %g and maximum %g", lo, hi)
	}
	body := b[tdigestHeaderBytes:]
	nc, k := binary.Uvarint(body)
	if k <= 0 || k != uvarintLen(nc) {
		return fmt.Errorf("no readable centroid count")
	}
	body = body[k:]
	// A merge leaves at most 2δ + 2 centroids: any two neighbours span
	// more than one unit of k1, and k1 runs from 0 to δ.
	if most := uint64(2*delta) + 2; nc > most || nc > n || (n > 0 && nc == 0) {
		return fmt.Errorf("%d centroids for %d values (at most %d at compression %g)", nc, n, most, delta)
	}
	c := make([]centroid, 0, nc)
	sum := uint64(0)
	prev := lo
	for i := range int(nc) {
		if len(body) < 8 {
			return fmt.Errorf("centroid %d of %d cut short", i+1, nc)
		}
		m := math.Float64frombits(le.Uint64(body))
		w, k := binary.Uvarint(body[8:])
		if k <= 0 || k != uvarintLen(w) {
			return fmt.Errorf("centroid %d of %d has no readable weight", i+1, nc)
		}
		body = body[8+k:]
		if !(m >= prev && m <= hi) {
			return fmt.Errorf("centroid %d of %d has mean %g, below the one before (%g) or outside [%g, %g]", i+1, nc, m, prev, lo, hi)
		}
		if w == 0 || w > n-sum {
			return fmt.Errorf("centroid %d of %d has weight %d, the count leaves %d", i+1, nc, w, n-sum)
		}
		sum += w
		prev = m
		c = append(c, centroid{m, float64(w)})
	}
	if sum != n {
		return fmt.Errorf("centroid weights add up to %d, the count is %d", sum, n)
	}
	if len(body) != 0 {
		return fmt.Errorf("%d bytes after the last centroid", len(body))
	}
	*t = TDigest{c: c, cw: float64(n), n: n, min: lo, max: hi, delta: delta}
	if delta == DefaultTDigestCompression {
		t.delta = 0 // as the zero value, so a read digest writes back the same
	}
	return nil
}
