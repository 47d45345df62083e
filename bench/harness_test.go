package bench

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
)

// TestPipelineMatchesLoop checks, at a small size and on a checked
// allocator, that the benchmark compares like with like: the replay and the
// generate pipelines deliver to the sink the same rows and bytes as the plain
// loop, and everything is released.
func TestPipelineMatchesLoop(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	const rows, batch = 30_000, 2048
	d, err := Generate(ctx, mem, rows, batch)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	if d.Rows != rows || len(d.Batches) != (rows+batch-1)/batch {
		t.Fatalf("generated %d rows in %d batches, want %d rows in batches of %d", d.Rows, len(d.Batches), rows, batch)
	}

	loop, err := NewLoop(d.Schema)
	if err != nil {
		t.Fatal(err)
	}
	want, err := loop.Run(ctx, mem, d)
	if err != nil {
		t.Fatal(err)
	}
	if frac := float64(want.RowsOut) / rows; frac < 0.30 || frac > 0.50 {
		t.Errorf("the predicate keeps %.0f %% of the rows, want 30-50 %%", 100*frac)
	}

	for _, replay := range []bool{true, false} {
		src := d
		name := "replay"
		if !replay {
			src, name = nil, "generate"
		}
		p, err := Pipeline(src, rows, batch)
		if err != nil {
			t.Fatal(err)
		}
		got, sum, err := RunPipeline(ctx, p, mem)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != want {
			t.Errorf("%s pipeline: %+v, loop: %+v", name, got, want)
		}
		if out := sum.Op("out"); out == nil || out.RowsIn != want.RowsOut {
			t.Errorf("%s pipeline: the sink got %+v, want %d rows", name, out, want.RowsOut)
		}
		if replay {
			if src := sum.Op("trades"); src.BatchesOut != int64(len(d.Batches)) {
				t.Errorf("replay emitted %d batches, want %d", src.BatchesOut, len(d.Batches))
			}
		}
	}

	bare, err := BarePipeline(d)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := RunPipeline(ctx, bare, mem)
	if err != nil {
		t.Fatal(err)
	}
	if got.RowsOut != rows || got.BytesOut != d.Bytes {
		t.Errorf("bare pipeline: %+v, want %d rows and %d bytes", got, rows, d.Bytes)
	}
}
