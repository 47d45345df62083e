package stateful

import (
	"fmt"
	"testing"
)

// Benchmarks of the sketches: Add per value, Merge per sketch and the
// memory a sketch holds (the Memory ones build their sketch once and
// report bytes/sketch). Run with
//
//	go test -run '^$' -bench 'HLL|TDigest' -benchtime 2000x ./operators/stateful

// BenchmarkHLLAdd adds batches of 1024 hashes to a sketch of the given
// number of distinct hashes (cycled), sparse at 1000, dense at 1M.
func BenchmarkHLLAdd(b *testing.B) {
	for _, distinct := range []uint64{1000, 1_000_000} {
		b.Run(fmt.Sprintf("distinct=%d", distinct), func(b *testing.B) {
			h := hllOf(b, DefaultHLLPrecision, 1, 0, distinct)
			batch := make([]uint64, 1024)
			next := uint64(0)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for i := range batch {
					batch[i] = splitmix64(1, next%distinct)
					next++
				}
				h.AddBatch(batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/value")
			b.ReportMetric(float64(h.Estimate()), "estimate")
		})
	}
}

// BenchmarkHLLMerge merges one sketch into a fresh copy of another, per
// pair of sizes: sparse into sparse, sparse into dense, dense into dense.
func BenchmarkHLLMerge(b *testing.B) {
	for _, c := range []struct{ into, from uint64 }{{100, 100}, {1000, 1000}, {100_000, 1000}, {100_000, 100_000}} {
		b.Run(fmt.Sprintf("into=%d/from=%d", c.into, c.from), func(b *testing.B) {
			into, err := hllOf(b, DefaultHLLPrecision, 1, 0, c.into).MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			from := hllOf(b, DefaultHLLPrecision, 2, 0, c.from)
			var h HLL
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				if err := h.UnmarshalBinary(into); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := h.Merge(from); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHLLMemory reports the bytes a sketch of 10, 1k and 1M distinct
// hashes holds (sparse, sparse, dense).
func BenchmarkHLLMemory(b *testing.B) {
	for _, distinct := range []uint64{10, 1000, 1_000_000} {
		b.Run(fmt.Sprintf("distinct=%d", distinct), func(b *testing.B) {
			h := hllOf(b, DefaultHLLPrecision, 3, 0, distinct)
			b.ResetTimer()
			var bytes int64
			for range b.N {
				bytes = h.Bytes()
			}
			b.ReportMetric(float64(bytes), "bytes/sketch")
		})
	}
}

// BenchmarkTDigestAdd adds batches of 1024 values (normal) to a digest
// that has seen a million.
func BenchmarkTDigestAdd(b *testing.B) {
	xs := quantileInputs(1<<20, 1)["normal"]
	d := digestOf(b, xs, 1, false)
	b.ReportAllocs()
	b.ResetTimer()
	off := 0
	for range b.N {
		d.AddBatch(xs[off : off+1024])
		off = (off + 1024) % len(xs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1024), "ns/value")
}

// BenchmarkTDigestMerge merges a digest of `from` values into a copy of
// one of 100k, as the combine of partial aggregates does.
func BenchmarkTDigestMerge(b *testing.B) {
	xs := quantileInputs(200_000, 2)["lognormal"]
	into, err := digestOf(b, xs[:100_000], 1, false).MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	for _, from := range []int{10, 1000, 100_000} {
		b.Run(fmt.Sprintf("from=%d", from), func(b *testing.B) {
			o := digestOf(b, xs[100_000:100_000+from], 1, false)
			o.Quantile(0.5) // merged into centroids, as a finished partial state
			var d TDigest
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				if err := d.UnmarshalBinary(into); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := d.Merge(o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTDigestQuantile is one Quantile of a digest of 1M values.
func BenchmarkTDigestQuantile(b *testing.B) {
	d := digestOf(b, quantileInputs(1_000_000, 3)["uniform"], 1, false)
	d.Quantile(0.5)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		d.Quantile(float64(i%1000) / 1000)
	}
}

// BenchmarkTDigestMemory reports the bytes a digest of 10, 1k and 1M
// values holds.
func BenchmarkTDigestMemory(b *testing.B) {
	xs := quantileInputs(1_000_000, 4)["uniform"]
	for _, n := range []int{10, 1000, 1_000_000} {
		b.Run(fmt.Sprintf("values=%d", n), func(b *testing.B) {
			d := digestOf(b, xs[:n], 1, false)
			b.ResetTimer()
			var bytes int64
			for range b.N {
				bytes = d.Bytes()
			}
			b.ReportMetric(float64(bytes), "bytes/sketch")
		})
	}
}
