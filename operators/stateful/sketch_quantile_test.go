package stateful

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// quantileInputs are the inputs the rank error is measured on, n values
// each.
func quantileInputs(n int, seed uint64) map[string][]float64 {
	r := rand.New(rand.NewPCG(seed, 17))
	zipf := rand.NewZipf(r, 1.2, 1, 1_000_000)
	in := map[string][]float64{}
	gen := func(name string, f func(i int) float64) {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = f(i)
		}
		in[name] = xs
	}
	gen("uniform", func(int) float64 { return r.Float64() })
	gen("normal", func(int) float64 { return r.NormFloat64()*10 + 100 })
	gen("lognormal", func(int) float64 { return math.Exp(r.NormFloat64() * 2) })
	gen("zipf", func(int) float64 { return float64(zipf.Uint64()) })
	gen("sorted", func(i int) float64 { return float64(i) })
	gen("reverse", func(i int) float64 { return float64(n - i) })
	return in
}

// rankError is how far value v is from rank q·n in sorted, as a fraction of
// n: 0 when q·n falls among the ranks v's copies hold. loose is the same
// with an answer strictly between two neighbouring data values a < v < b
// given the ranks of both (a's first to b's last): on data with heavy ties
// a t-digest may interpolate between the right value and the next one,
// which the strict error counts as far off as the whole tie.
func rankError(sorted []float64, q, v float64) (strict, loose float64) {
	n := len(sorted)
	lo := sort.SearchFloat64s(sorted, v)                            // values < v
	hi := sort.Search(n, func(i int) bool { return sorted[i] > v }) // values <= v
	strict = outside(q*float64(n), float64(lo), float64(hi)) / float64(n)
	if lo == hi && lo > 0 && hi < n { // v is no data value: take in its neighbours
		lo = sort.SearchFloat64s(sorted, sorted[lo-1])
		hi = sort.Search(n, func(i int) bool { return sorted[i] > sorted[hi] })
	}
	return strict, outside(q*float64(n), float64(lo), float64(hi)) / float64(n)
}

// outside is how far r is outside [lo, hi].
func outside(r, lo, hi float64) float64 {
	return max(lo-r, r-hi, 0)
}

var testQuantiles = []float64{0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}

// The rank error the tests hold a δ = 100 digest to, as a fraction of n
// (measured worst: doc.go): tdigestRankBound on every input, the strict
// error on inputs without heavy ties and the loose one on all;
// tdigestTieBound the strict error on Zipf.
const (
	tdigestRankBound = 0.0025
	tdigestTieBound  = 0.03
)

// digestOf splits xs into parts consecutive runs, a digest each, merged
// one after another into the first (parts = 1: one digest). With spill,
// each part goes through MarshalBinary and UnmarshalBinary first, as a
// partial state read back from a spill file: its values are then merged
// into centroids, not buffered.
func digestOf(t testing.TB, xs []float64, parts int, spill bool) *TDigest {
	t.Helper()
	var all TDigest
	for p := range parts {
		d := &TDigest{}
		d.AddBatch(xs[p*len(xs)/parts : (p+1)*len(xs)/parts])
		if spill {
			d = roundTrip(t, d)
		}
		if err := all.Merge(d); err != nil {
			t.Fatal(err)
		}
	}
	return &all
}

// roundTrip is d written and read back.
func roundTrip(t testing.TB, d *TDigest) *TDigest {
	t.Helper()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var r TDigest
	if err := r.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	return &r
}

// treeDigest merges digests of parts runs of xs pairwise, round trips
// through MarshalBinary included, as partial states read back from spill
// files would be.
func treeDigest(t testing.TB, xs []float64, parts int) *TDigest {
	t.Helper()
	ds := make([]*TDigest, parts)
	for p := range ds {
		ds[p] = &TDigest{}
		ds[p].AddBatch(xs[p*len(xs)/parts : (p+1)*len(xs)/parts])
	}
	for len(ds) > 1 {
		var next []*TDigest
		for i := 0; i < len(ds); i += 2 {
			if i+1 < len(ds) {
				if err := ds[i].Merge(ds[i+1]); err != nil {
					t.Fatal(err)
				}
			}
			next = append(next, roundTrip(t, ds[i]))
		}
		ds = next
	}
	return ds[0]
}

func TestTDigestRankError(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 50_000
	}
	type worst struct{ strict, loose, tails float64 }
	worsts := map[string]*worst{} // by input and how the digest was built
	for seed := uint64(1); seed <= 2; seed++ {
		for name, xs := range quantileInputs(n, seed) {
			sorted := slices.Clone(xs)
			slices.Sort(sorted)
			builds := map[string]*TDigest{
				"one digest":         digestOf(t, xs, 1, false),
				"100 merged":         digestOf(t, xs, 100, false),
				"1000 spilt, merged": digestOf(t, xs, 1000, true),
				"tree of 64, spilt":  treeDigest(t, xs, 64),
			}
			for how, d := range builds {
				if d.Count() != uint64(n) {
					t.Fatalf("%s %s: count %d", name, how, d.Count())
				}
				w := worsts[name+" / "+how]
				if w == nil {
					w = &worst{}
					worsts[name+" / "+how] = w
				}
				for _, q := range testQuantiles {
					v := d.Quantile(q)
					strict, loose := rankError(sorted, q, v)
					w.strict, w.loose = max(w.strict, strict), max(w.loose, loose)
					if q <= 0.01 || q >= 0.99 {
						w.tails = max(w.tails, strict)
					}
					bound := tdigestRankBound
					if name == "zipf" {
						bound = tdigestTieBound
					}
					if strict > bound || loose > tdigestRankBound {
						t.Errorf("%s seed %d, %s: q=%g gives %g, rank error %.5f (loose %.5f) > %.4f", name, seed, how, q, v, strict, loose, bound)
					}
				}
				if d.Quantile(0) != sorted[0] || d.Quantile(1) != sorted[n-1] {
					t.Errorf("%s, %s: q=0 and 1 give %g and %g, not the minimum %g and maximum %g", name, how, d.Quantile(0), d.Quantile(1), sorted[0], sorted[n-1])
				}
			}
		}
	}
	keys := slices.Sorted(maps.Keys(worsts))
	for _, k := range keys {
		w := worsts[k]
		t.Logf("n=%d %-32s worst rank error %.5f (loose %.5f), at q <= 0.01 or >= 0.99 %.5f", n, k, w.strict, w.loose, w.tails)
	}
}

// hazen is the exact Hazen (type 5) quantile of sorted: what a digest that
// merged nothing answers.
func hazen(sorted []float64, q float64) float64 {
	h := q*float64(len(sorted)) - 0.5
	if h <= 0 {
		return sorted[0]
	}
	if h >= float64(len(sorted)-1) {
		return sorted[len(sorted)-1]
	}
	i := int(h)
	return sorted[i] + (h-float64(i))*(sorted[i+1]-sorted[i])
}

func TestTDigestSmallInputsExact(t *testing.T) {
	var empty TDigest
	if !math.IsNaN(empty.Quantile(0.5)) || empty.Count() != 0 || !math.IsNaN(empty.Min()) {
		t.Fatalf("empty digest: quantile %g count %d", empty.Quantile(0.5), empty.Count())
	}
	// DuckDB 1.5.6 on the same inputs: approx_quantile(x, [0, 0.1, 0.25,
	// 0.4, 0.5, 0.75, 0.9, 1]) of (1, 2) is [1, 1, 1, 1.3, 1.5, 2, 2, 2],
	// of (1, 2, 4, 8) [1, 1, 1.5, 2.2, 3, 6, 8, 8].
	qs := []float64{0, 0.1, 0.25, 0.4, 0.5, 0.75, 0.9, 1}
	for _, c := range []struct {
		in, want []float64
	}{
		{[]float64{5}, []float64{5, 5, 5, 5, 5, 5, 5, 5}},
		{[]float64{2, 1}, []float64{1, 1, 1, 1.3, 1.5, 2, 2, 2}},
		{[]float64{8, 1, 4, 2}, []float64{1, 1, 1.5, 2.2, 3, 6, 8, 8}},
	} {
		var d TDigest
		d.AddBatch(c.in)
		for i, q := range qs {
			if got := d.Quantile(q); math.Abs(got-c.want[i]) > 1e-12 {
				t.Errorf("%v: q=%g gives %g, want %g", c.in, q, got, c.want[i])
			}
		}
	}
	// Up to 60 values nothing is merged: every quantile is the exact
	// Hazen quantile, however the values were split and merged.
	r := rand.New(rand.NewPCG(3, 4))
	for n := 1; n <= 60; n++ {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = math.Round(r.NormFloat64()*1000) / 10
		}
		sorted := slices.Clone(xs)
		slices.Sort(sorted)
		for _, parts := range []int{1, min(n, 7)} {
			d := digestOf(t, xs, parts, parts > 1)
			for q := 0.0; q <= 1; q += 1.0 / 128 {
				want := hazen(sorted, q)
				if got := d.Quantile(q); math.Abs(got-want) > 1e-9*max(1, math.Abs(want)) {
					t.Fatalf("n=%d parts=%d q=%g: %g, Hazen %g", n, parts, q, got, want)
				}
			}
		}
	}
}

func TestTDigestEqualValuesAndSkips(t *testing.T) {
	for _, v := range []float64{0, 0.1, -3.7, 1e300} {
		xs := slices.Repeat([]float64{v}, 30_000)
		for _, d := range []*TDigest{digestOf(t, xs, 1, false), digestOf(t, xs, 300, true)} {
			for _, q := range testQuantiles {
				if got := d.Quantile(q); got != v {
					t.Fatalf("30000 × %g: q=%g gives %g", v, q, got)
				}
			}
		}
	}
	var d TDigest
	d.AddBatch([]float64{math.NaN(), 1, math.Inf(1), 3, math.Inf(-1)})
	if d.Count() != 2 || d.Min() != 1 || d.Max() != 3 || d.Quantile(0.5) != 2 {
		t.Fatalf("1, 3 among NaN and ±Inf: count %d min %g max %g median %g", d.Count(), d.Min(), d.Max(), d.Quantile(0.5))
	}
	var nan TDigest
	nan.Add(math.NaN())
	if nan.Count() != 0 || !math.IsNaN(nan.Quantile(0.5)) {
		t.Fatal("a digest of NaN alone has a quantile")
	}
	// All negative: the maximum is the greatest value (DuckDB 1.5.6 says
	// 2.2e-308 here).
	var neg TDigest
	neg.AddBatch([]float64{-1, -2, -4})
	if neg.Quantile(1) != -1 || neg.Quantile(0.9) != -1 || neg.Quantile(0.5) != -2 {
		t.Fatalf("-1, -2, -4: q=1 %g q=0.9 %g q=0.5 %g", neg.Quantile(1), neg.Quantile(0.9), neg.Quantile(0.5))
	}
	for _, q := range []float64{-0.1, 1.1, math.NaN()} {
		if !math.IsNaN(neg.Quantile(q)) {
			t.Errorf("q=%g: %g, want NaN", q, neg.Quantile(q))
		}
	}
	if err := neg.Merge(&neg); err == nil {
		t.Error("a digest merged into itself")
	}
	for _, c := range []float64{0, 9, math.NaN(), 10001} {
		if _, err := NewTDigest(c); err == nil || !strings.Contains(err.Error(), "compression") {
			t.Errorf("NewTDigest(%g): %v", c, err)
		}
	}
}

// TestTDigestMemory: a digest holds memory in proportion to its values
// until the buffer and centroids reach their most, and at most 2δ + 2
// centroids however many values and merges it saw.
func TestTDigestMemory(t *testing.T) {
	xs := quantileInputs(1_000_000, 5)["lognormal"]
	prev := int64(0)
	for _, n := range []int{1, 10, 1000, 100_000, 1_000_000} {
		var d TDigest
		d.AddBatch(xs[:n])
		b := d.Bytes()
		d.Quantile(0.5)
		if len(d.c) > 2*DefaultTDigestCompression+2 {
			t.Errorf("n=%d: %d centroids", n, len(d.c))
		}
		if b > 12<<10 {
			t.Errorf("n=%d: %d bytes", n, b)
		}
		t.Logf("n=%-8d %5d bytes, %3d centroids once merged", n, b, len(d.c))
		prev = b
	}
	if prev == 0 {
		t.Fatal("no memory measured")
	}
	d := digestOf(t, xs, 5000, true)
	if len(d.c) > 2*DefaultTDigestCompression+2 || d.Bytes() > 12<<10 {
		t.Errorf("5000 merged digests: %d centroids, %d bytes", len(d.c), d.Bytes())
	}
}

func TestTDigestAddAllocs(t *testing.T) {
	xs := quantileInputs(100_000, 6)["normal"]
	d := digestOf(t, xs, 1, false)
	i := 0
	if a := testing.AllocsPerRun(20_000, func() { d.Add(xs[i%len(xs)]); i++ }); a != 0 {
		t.Errorf("Add on a grown digest: %.3f allocations", a)
	}
	if a := testing.AllocsPerRun(100, func() { d.Quantile(0.3) }); a != 0 {
		t.Errorf("Quantile: %.3f allocations", a)
	}
}

func TestTDigestMarshal(t *testing.T) {
	xs := quantileInputs(20_000, 7)["normal"]
	for _, n := range []int{0, 1, 2, 50, 20_000} {
		d := digestOf(t, xs[:n], 1, false)
		d.Add(xs[0]) // values in the buffer: MarshalBinary merges them
		b, err := d.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var g TDigest
		if err := g.UnmarshalBinary(b); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		for _, q := range testQuantiles {
			if a, b := d.Quantile(q), g.Quantile(q); a != b {
				t.Fatalf("n=%d q=%g: %g before, %g after a round trip", n, q, a, b)
			}
		}
		if b2, _ := g.AppendBinary([]byte("x")); !bytes.Equal(b2[1:], b) {
			t.Fatalf("n=%d: the read digest writes other bytes", n)
		}
		for i := range len(b) {
			if err := g.UnmarshalBinary(b[:i]); err == nil {
				t.Fatalf("n=%d: %d of %d bytes read without an error", n, i, len(b))
			}
			if g.Count() != 0 {
				t.Fatalf("n=%d: a failed read left values", n)
			}
		}
	}
	var two TDigest
	two.AddBatch([]float64{1, 2})
	good, _ := two.MarshalBinary() // header, 2, (1, w 1), (2, w 1)
	f64 := func(b []byte, at int, v float64) []byte {
		c := slices.Clone(b)
		for i := range 8 {
			c[at+i] = byte(math.Float64bits(v) >> (8 * i))
		}
		return c
	}
	cent := tdigestHeaderBytes + 1
	checkBadInputs(t, "stateful: t-digest state of", func(b []byte) error { var g TDigest; return g.UnmarshalBinary(b) }, []badInput{
		{"magic", append([]byte("zTDH"), good[4:]...), `starts with "zTDH"`},
		{"version", patch(good, 4, 0), "version 0"},
		{"compression", f64(good, 5, 5), "compression 5 out of range"},
		{"compression NaN", f64(good, 5, math.NaN()), "compression NaN"},
		{"min above max", f64(good, 21, 3), "minimum 3 and maximum 2"},
		{"infinite max", f64(good, 29, math.Inf(1)), "maximum +Inf"},
		{"mean below min", f64(good, cent, 0.5), "mean 0.5, below"},
		{"mean NaN", f64(good, cent, math.NaN()), "mean NaN"},
		{"means descending", f64(good, cent+9, 0.9), "mean 0.9"},
		{"weight 0", patch(good, cent+8, 0), "weight 0"},
		{"weights short", patch(patch(good, 13, 3), cent+8, 1), "add up to 2, the count is 3"},
		{"weights over", patch(good, cent+17, 2), "weight 2, the count leaves 1"},
		{"centroid count", patch(good, tdigestHeaderBytes, 3), "3 centroids for 2 values"},
		{"trailing", append(slices.Clone(good), 0), "1 bytes after"},
		{"padded varint", append(append(slices.Clone(good[:tdigestHeaderBytes]), 0x82, 0x00), good[tdigestHeaderBytes+1:]...), "no readable centroid count"},
	})
}

// FuzzTDigestUnmarshal: any input is read or refused with an error, never
// a panic; what is read writes back to the same bytes and answers
// quantiles within its minimum and maximum, merged or not.
func FuzzTDigestUnmarshal(f *testing.F) {
	xs := quantileInputs(3000, 8)["lognormal"]
	for _, n := range []int{0, 1, 3, 100, 3000} {
		b, _ := digestOf(f, xs[:n], 1, false).MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d TDigest
		if err := d.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := d.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("read %x, wrote %x (%v)", b, out, err)
		}
		check := func(d *TDigest, what string) {
			for _, q := range testQuantiles {
				v := d.Quantile(q)
				if d.Count() > 0 && !(v >= d.Min() && v <= d.Max()) {
					t.Fatalf("%s: q=%g gives %g outside [%g, %g]", what, q, v, d.Min(), d.Max())
				}
			}
		}
		check(&d, "read")
		var m TDigest
		m.AddBatch([]float64{-1, 0, 1})
		if err := m.Merge(&d); err != nil {
			t.Fatal(err)
		}
		if m.Count() != d.Count()+3 {
			t.Fatalf("merged count %d, want %d", m.Count(), d.Count()+3)
		}
		check(&m, "merged")
		if _, err := m.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}

func ExampleTDigest() {
	var d TDigest // δ = 100, as DuckDB's approx_quantile
	for i := 1; i <= 1000; i++ {
		d.Add(float64(i))
	}
	d.Add(math.NaN()) // skipped, as DuckDB skips it
	fmt.Println(d.Count(), d.Quantile(0), d.Quantile(0.5), d.Quantile(1))
	// Output: 1000 1 500.5 1000
}
