package stateful

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// splitmix64 is the n-th output of SplitMix64 from seed: distinct for
// distinct n under one seed (its finalizer is a bijection), so a run of n
// of them is a set of exactly n hashes.
func splitmix64(seed, n uint64) uint64 {
	z := seed + (n+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// hllOf is the sketch of hashes [from, to) of seed, added in batches.
func hllOf(t testing.TB, p int, seed uint64, from, to uint64) *HLL {
	t.Helper()
	h, err := NewHLL(p)
	if err != nil {
		t.Fatal(err)
	}
	var batch [1024]uint64
	for i := from; i < to; {
		n := 0
		for ; n < len(batch) && i < to; n, i = n+1, i+1 {
			batch[n] = splitmix64(seed, i)
		}
		h.AddBatch(batch[:n])
	}
	return h
}

// registers is the dense registers a sketch stands for (a sparse one is
// turned dense on a copy), to compare two sketches exactly.
func registers(h *HLL) []uint8 {
	c := &HLL{p: h.p, sparse: append([]uint32(nil), h.sparse...), dense: append([]uint8(nil), h.dense...)}
	if c.dense == nil {
		c.toDense()
	}
	return c.dense
}

func TestHLLAccuracy(t *testing.T) {
	const p = DefaultHLLPrecision
	bound := 3 * HLLStandardError(p) // 2.44 %
	cases := []struct {
		n     uint64
		seeds int
	}{{0, 3}, {1, 100}, {10, 100}, {1000, 100}, {5000, 50}, {20000, 50}, {100000, 20}, {10_000_000, 3}}
	for _, c := range cases {
		if testing.Short() && c.n > 100000 {
			continue
		}
		worst, sum := 0.0, 0.0
		sparse := 0
		for s := range c.seeds {
			h := hllOf(t, p, uint64(s)*7919+1, 0, c.n)
			if h.Sparse() {
				sparse++
			}
			est := h.Estimate()
			if c.n == 0 {
				if est != 0 {
					t.Fatalf("n=0: estimate %d", est)
				}
				continue
			}
			e := (float64(est) - float64(c.n)) / float64(c.n)
			sum += e
			worst = max(worst, math.Abs(e))
			if math.Abs(e) > bound {
				t.Errorf("n=%d seed %d: estimate %d, relative error %.4f > %.4f", c.n, s, est, e, bound)
			}
			// While sparse, linear counting over 2^25 slots is off only by
			// the odd collision of two 25-bit indexes: exact up to tens,
			// within 0.2 % at a thousand.
			if h.Sparse() && ((c.n <= 10 && est != c.n) || math.Abs(e) > 0.002) {
				t.Errorf("n=%d seed %d: sparse estimate %d", c.n, s, est)
			}
		}
		t.Logf("n=%-9d seeds=%-3d sparse=%-3d mean error %+.5f  worst |error| %.5f (bound %.4f)", c.n, c.seeds, sparse, sum/float64(c.seeds), worst, bound)
	}
}

func TestHLLPrecisions(t *testing.T) {
	for _, p := range []int{MinHLLPrecision, 8, 12, 16, MaxHLLPrecision} {
		bound := 3 * HLLStandardError(p)
		for _, n := range []uint64{100, 3000, 50000} {
			for s := range 5 {
				est := hllOf(t, p, uint64(s)+100, 0, n).Estimate()
				if e := math.Abs(float64(est)-float64(n)) / float64(n); e > bound {
					t.Errorf("p=%d n=%d seed %d: estimate %d, |error| %.4f > %.4f", p, n, s, est, e, bound)
				}
			}
		}
	}
	for _, p := range []int{0, 3, 19, 64} {
		if _, err := NewHLL(p); err == nil || !strings.Contains(err.Error(), "precision") {
			t.Errorf("NewHLL(%d): %v", p, err)
		}
	}
	var zero HLL
	if zero.Precision() != DefaultHLLPrecision || zero.Estimate() != 0 {
		t.Fatalf("zero HLL: precision %d estimate %d", zero.Precision(), zero.Estimate())
	}
}

func TestHLLDuplicatesNotCounted(t *testing.T) {
	for _, n := range []uint64{7, 1500, 40000} { // sparse, sparse, dense
		once := hllOf(t, DefaultHLLPrecision, 42, 0, n)
		var many HLL
		order := make([]uint64, 0, 10*n)
		for range 10 {
			for i := range n {
				order = append(order, splitmix64(42, i))
			}
		}
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, x := range order {
			many.Add(x)
		}
		if !bytes.Equal(registers(once), registers(&many)) {
			t.Errorf("n=%d: ten shuffled copies of each hash give other registers than one copy", n)
		}
		if a, b := once.Estimate(), many.Estimate(); a != b {
			t.Errorf("n=%d: estimate %d once, %d with duplicates", n, a, b)
		}
	}
}

// TestHLLSparseToDense adds hashes one by one and checks the sketch turns
// dense once, when its table would pass 2^p bytes, with the registers a
// sketch dense from the start has, and memory that never passes 2^p bytes
// of table.
func TestHLLSparseToDense(t *testing.T) {
	for _, p := range []int{MinHLLPrecision, 10, DefaultHLLPrecision} {
		var h HLL
		h.p = uint8(p)
		dense := &HLL{p: uint8(p)}
		dense.toDense()
		turned := uint64(0)
		for i := range uint64(1) << (p + 1) {
			x := splitmix64(9, i)
			h.Add(x)
			dense.Add(x)
			if h.Sparse() {
				if b := h.Bytes() - hllStructBytes; b > 1<<p {
					t.Fatalf("p=%d: sparse sketch of %d hashes holds %d bytes, more than the %d of its registers", p, i+1, b, 1<<p)
				}
			} else if turned == 0 {
				turned = i + 1
			}
		}
		if turned == 0 {
			t.Fatalf("p=%d: still sparse after %d distinct hashes", p, 1<<(p+1))
		}
		if !bytes.Equal(registers(&h), dense.dense) {
			t.Fatalf("p=%d: registers after the sparse set turned dense differ from a dense sketch's", p)
		}
		t.Logf("p=%d: dense after %d distinct hashes (registers %d bytes)", p, turned, 1<<p)
	}
	// Many small groups stay small: 10 distinct values take a 64-byte table.
	h := hllOf(t, DefaultHLLPrecision, 3, 0, 10)
	if !h.Sparse() || h.Bytes() > hllStructBytes+64 {
		t.Fatalf("10 distinct hashes: sparse %v, %d bytes", h.Sparse(), h.Bytes())
	}
}

func TestHLLMerge(t *testing.T) {
	// Sizes on either side of the sparse/dense line (2048-4096 distinct at
	// p = 14); the two halves overlap by a third.
	for _, na := range []uint64{0, 50, 3000, 30000} {
		for _, nb := range []uint64{0, 70, 3000, 30000} {
			a := hllOf(t, DefaultHLLPrecision, 5, 0, na)
			lo := na - na/3
			b := hllOf(t, DefaultHLLPrecision, 5, lo, lo+nb)
			union := hllOf(t, DefaultHLLPrecision, 5, 0, max(na, lo+nb))
			aSparse, bSparse := a.Sparse(), b.Sparse()
			bBefore := registers(b)
			if err := a.Merge(b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(registers(a), registers(union)) {
				t.Errorf("a %d (sparse %v) ∪ b %d (sparse %v): registers differ from the union's", na, aSparse, nb, bSparse)
			}
			if !bytes.Equal(registers(b), bBefore) {
				t.Errorf("merge changed its argument")
			}
			if got, want := a.Estimate(), union.Estimate(); math.Abs(float64(got)-float64(want)) > 3*HLLStandardError(DefaultHLLPrecision)*float64(want) {
				t.Errorf("a %d ∪ b %d: estimate %d, the union's %d", na, nb, got, want)
			}
		}
	}
	a, _ := NewHLL(12)
	if err := a.Merge(&HLL{}); err == nil || !strings.Contains(err.Error(), "precision 14 into one of 12") {
		t.Fatalf("merge of precisions 14 into 12: %v", err)
	}
	// Merging many small sketches is the union of them all.
	var all HLL
	for g := range uint64(500) {
		all.Merge(hllOf(t, DefaultHLLPrecision, 8, g*20, g*20+40))
	}
	if want := registers(hllOf(t, DefaultHLLPrecision, 8, 0, 500*20+20)); !bytes.Equal(registers(&all), want) {
		t.Fatal("500 merged small sketches differ from the sketch of their union")
	}
}

func TestHLLMarshal(t *testing.T) {
	for _, n := range []uint64{0, 1, 100, 2000, 100000} {
		h := hllOf(t, DefaultHLLPrecision, 11, 0, n)
		h.Add(splitmix64(11, 0)) // a duplicate
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var g HLL
		if err := g.UnmarshalBinary(b); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if g.Sparse() != h.Sparse() || g.Estimate() != h.Estimate() || !bytes.Equal(registers(&g), registers(h)) {
			t.Fatalf("n=%d: round trip changed the sketch", n)
		}
		b2, _ := g.AppendBinary([]byte("prefix"))
		if !bytes.Equal(b2[6:], b) {
			t.Fatalf("n=%d: AppendBinary of the read sketch differs from MarshalBinary", n)
		}
		// Every truncation is an error, none a panic.
		for i := range len(b) {
			if err := g.UnmarshalBinary(b[:i]); err == nil {
				t.Fatalf("n=%d: %d of %d bytes read without an error", n, i, len(b))
			}
			if !g.Sparse() || g.Estimate() != 0 {
				t.Fatalf("n=%d: a failed read left a non-empty sketch", n)
			}
		}
	}
	sparse, _ := hllOf(t, DefaultHLLPrecision, 1, 0, 3).MarshalBinary()
	dense, _ := hllOf(t, 4, 1, 0, 300).MarshalBinary()
	checkBadInputs(t, "stateful: hll state of", func(b []byte) error { var g HLL; return g.UnmarshalBinary(b) }, []badInput{
		{"magic", append([]byte("xHLL"), sparse[4:]...), `starts with "xHLL"`},
		{"version", patch(sparse, 4, 2), "version 2, this build reads 1"},
		{"precision", patch(sparse, 5, 30), "precision 30 out of range"},
		{"mode", patch(sparse, 6, 9), "mode byte 9"},
		{"register", patch(dense, 9, 62), "rank 62, the most at precision 4 is 61"},
		{"dense length", dense[:len(dense)-1], "dense with 15 registers"},
		{"trailing", append(sparse, 0), "1 bytes after the last sparse entry"},
		{"count", append(sparse[:7:7], 0xff, 0x7f), "sparse with 16383 entries"},
		{"same index", []byte("zHLL\x01\x0e\x01\x02\x41\x01"), "same index"},
		{"rank 0", []byte("zHLL\x01\x0e\x01\x01\x40"), "rank 0"},
		{"not ascending", []byte("zHLL\x01\x0e\x01\x02\x41\x00"), "not above"},
	})
}

// badInput is an input a reader must refuse, and what its error says.
type badInput struct {
	name string
	b    []byte
	want string
}

// checkBadInputs reads every input with read and checks it is refused
// with an error that starts with prefix and says want.
func checkBadInputs(t *testing.T, prefix string, read func([]byte) error, bad []badInput) {
	t.Helper()
	for _, c := range bad {
		err := read(c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), prefix) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// patch is a copy of b with b[i] = v.
func patch(b []byte, i int, v byte) []byte {
	c := append([]byte(nil), b...)
	c[i] = v
	return c
}

func TestHLLAddAllocs(t *testing.T) {
	dense := hllOf(t, DefaultHLLPrecision, 1, 0, 100000)
	sparse := hllOf(t, DefaultHLLPrecision, 1, 0, 1000)
	var i uint64
	for name, h := range map[string]*HLL{"dense": dense, "sparse": sparse} {
		if a := testing.AllocsPerRun(1000, func() { h.Add(splitmix64(1, i%1000)); i++ }); a != 0 {
			t.Errorf("%s Add: %.1f allocations", name, a)
		}
	}
}

// FuzzHLLUnmarshal: any input is read or refused with an error, never a
// panic, and what is read writes back to the same bytes and estimates.
func FuzzHLLUnmarshal(f *testing.F) {
	for _, n := range []uint64{0, 1, 5, 300} {
		b, _ := hllOf(f, 10, 1, 0, n).MarshalBinary()
		f.Add(b)
	}
	b, _ := hllOf(f, 4, 1, 0, 100).MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var h HLL
		if err := h.UnmarshalBinary(b); err != nil {
			return
		}
		e := h.Estimate()
		out, err := h.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("read %x, wrote %x (%v)", b, out, err)
		}
		h.Add(1)
		var g HLL
		g.p = h.p
		if err := g.Merge(&h); err != nil {
			t.Fatal(err)
		}
		if g.Estimate() < e/2 {
			t.Fatalf("merged estimate %d below half of %d", g.Estimate(), e)
		}
	})
}
