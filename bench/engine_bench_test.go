package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// benchRows is the number of rows per op. cmd/overhead runs the same
// measurement with more rows and repetitions, outside `go test`.
const benchRows = 1 << 20

var benchBatches = []int{1 << 10, 8 << 10, 64 << 10}

// BenchmarkPipeline runs replay → filter → project → discard on the real
// executor. ns/op is the pipeline alone; the plain loop over the same batches
// (the same Select and Eval calls) runs after each op with the timer stopped,
// and the two give:
//
//	overhead-ratio  pipeline time ÷ loop time (below 1 when the pipeline's
//	                operators overlap on several CPUs: run with -cpu 1,2)
//	edge-ns/batch   (pipeline − loop) ÷ (batches × 3 edges)
//	allocs/batch    heap allocations per source batch (pipeline, and loop-)
//	goroutines/batch  goroutines started per source batch
func BenchmarkPipeline(b *testing.B) {
	for _, batch := range benchBatches {
		b.Run(fmt.Sprintf("rows=%d/batch=%d", benchRows, batch), func(b *testing.B) {
			ctx, mem := context.Background(), memory.DefaultAllocator
			d, loop := benchSetup(b, batch)
			defer d.Release()
			p, err := Pipeline(d, benchRows, batch)
			if err != nil {
				b.Fatal(err)
			}
			var pipe, base Cost
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c, err := Measure(func() error { _, _, err := RunPipeline(ctx, p, mem); return err })
				if err != nil {
					b.Fatal(err)
				}
				pipe.add(c)
				b.StopTimer()
				c, err = Measure(func() error { _, err := loop.Run(ctx, mem, d); return err })
				if err != nil {
					b.Fatal(err)
				}
				base.add(c)
				b.StartTimer()
			}
			batches := float64(len(d.Batches) * b.N)
			report(b, pipe, d, batches)
			b.ReportMetric(float64(base.Mallocs)/batches, "loop-allocs/batch")
			b.ReportMetric(float64(d.Rows)*float64(b.N)/base.Elapsed.Seconds(), "loop-rows/s")
			b.ReportMetric(pipe.Elapsed.Seconds()/base.Elapsed.Seconds(), "overhead-ratio")
			b.ReportMetric(float64(pipe.Elapsed-base.Elapsed)/(batches*Edges), "edge-ns/batch")
		})
	}
}

// BenchmarkPipelineGenerate is the same pipeline with the generate source
// making its batches (so it measures generation too, and the loop baseline
// does not apply).
func BenchmarkPipelineGenerate(b *testing.B) {
	for _, batch := range benchBatches {
		b.Run(fmt.Sprintf("rows=%d/batch=%d", benchRows, batch), func(b *testing.B) {
			ctx := context.Background()
			mem := memory.DefaultAllocator
			p, err := Pipeline(nil, benchRows, batch)
			if err != nil {
				b.Fatal(err)
			}
			var pipe Cost
			var src int64 // source bytes of one run
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c, err := Measure(func() error {
					_, sum, err := RunPipeline(ctx, p, mem)
					if o := sum.Op("trades"); o != nil {
						src = o.BytesOut
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				pipe.add(c)
			}
			batches := float64((benchRows + batch - 1) / batch * b.N)
			report(b, pipe, &Data{Rows: benchRows, Bytes: src}, batches)
		})
	}
}

// BenchmarkEdges runs replay → project(*) → project(*) → discard: the three
// edges of BenchmarkPipeline with next to no work, so edge-ns/batch is the
// engine's own cost per batch per edge.
func BenchmarkEdges(b *testing.B) {
	for _, batch := range benchBatches {
		b.Run(fmt.Sprintf("rows=%d/batch=%d", benchRows, batch), func(b *testing.B) {
			ctx := context.Background()
			mem := memory.DefaultAllocator
			d, err := Generate(ctx, mem, benchRows, batch)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Release()
			p, err := BarePipeline(d)
			if err != nil {
				b.Fatal(err)
			}
			var c Cost
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				one, err := Measure(func() error { _, _, err := RunPipeline(ctx, p, mem); return err })
				if err != nil {
					b.Fatal(err)
				}
				c.add(one)
			}
			batches := float64(len(d.Batches) * b.N)
			report(b, c, d, batches)
			b.ReportMetric(float64(c.Elapsed)/(batches*Edges), "edge-ns/batch")
		})
	}
}

// BenchmarkLoop is the baseline alone, for benchstat.
func BenchmarkLoop(b *testing.B) {
	for _, batch := range benchBatches {
		b.Run(fmt.Sprintf("rows=%d/batch=%d", benchRows, batch), func(b *testing.B) {
			ctx, mem := context.Background(), memory.DefaultAllocator
			d, loop := benchSetup(b, batch)
			defer d.Release()
			var base Cost
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c, err := Measure(func() error { _, err := loop.Run(ctx, mem, d); return err })
				if err != nil {
					b.Fatal(err)
				}
				base.add(c)
			}
			report(b, base, d, float64(len(d.Batches)*b.N))
		})
	}
}

func (c *Cost) add(o Cost) {
	c.Elapsed += o.Elapsed
	c.Mallocs += o.Mallocs
	c.Goroutines += o.Goroutines
}

// report adds rows/s, bytes/s (input payload) and allocs/batch for c, the
// summed cost of b.N runs over d.
func report(b *testing.B, c Cost, d *Data, batches float64) {
	sec := c.Elapsed.Seconds()
	if sec <= 0 {
		sec = float64(time.Nanosecond) / float64(time.Second)
	}
	b.ReportMetric(float64(d.Rows)*float64(b.N)/sec, "rows/s")
	b.ReportMetric(float64(d.Bytes)*float64(b.N)/sec, "bytes/s")
	b.ReportMetric(float64(c.Mallocs)/batches, "allocs/batch")
	b.ReportMetric(float64(c.Goroutines)/batches, "goroutines/batch")
}

// benchSetup generates the benchmark batches (the caller releases them) and
// compiles the plain-loop baseline over them.
func benchSetup(b *testing.B, batch int) (*Data, *Loop) {
	b.Helper()
	d, err := Generate(context.Background(), memory.DefaultAllocator, benchRows, batch)
	if err != nil {
		b.Fatal(err)
	}
	loop, err := NewLoop(d.Schema)
	if err != nil {
		d.Release()
		b.Fatal(err)
	}
	return d, loop
}
