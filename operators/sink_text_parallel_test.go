package operators

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/zflowdev/zflow/engine"
)

// TestTextSinkParallel: the csv and ndjson sinks format a large batch in
// several runs at once when Settings.Threads allows, and write exactly the
// bytes one goroutine writes (quotes, nulls, newlines in strings, a batch
// cut into uneven runs, small batches staying serial); the arrow sink
// compresses a batch's buffers at once, to the same bytes.
func TestTextSinkParallel(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	gf, err := buildFactory(GenerateSpec(), testGenConfig(30011))
	if err != nil {
		t.Fatal(err)
	}
	var scratch []uint32
	big, err := gf.(*generateFactory).batch(mem, 0, 30011, &scratch)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Release()
	small := big.NewSlice(0, 5000)
	defer small.Release()
	for _, kind := range []string{"csv", "ndjson", "arrow"} {
		var want []byte
		for _, threads := range []int{1, 2, 3, 8} {
			dir := t.TempDir()
			spec, cfg := CSVSinkSpec(), any(&CSVSinkConfig{Path: filepath.Join(dir, "o"), Header: true, Delimiter: ",", NullValue: "NA"})
			switch kind {
			case "ndjson":
				spec, cfg = NDJSONSinkSpec(), &NDJSONSinkConfig{Path: filepath.Join(dir, "o")}
			case "arrow":
				spec, cfg = ArrowSinkSpec(), &ArrowSinkConfig{Path: filepath.Join(dir, "o"), Format: "file", Compression: "zstd"}
			}
			f, err := buildFactory(spec, cfg, big.Schema())
			if err != nil {
				t.Fatal(err)
			}
			ic := testIC(mem, "out", kind, 0)
			ic.Settings.Threads = threads
			op, err := f.New(ic)
			if err != nil {
				t.Fatal(err)
			}
			s := op.(engine.Sink)
			for _, rec := range []arrow.RecordBatch{big, small, big} {
				if err := s.Write(context.Background(), 0, rec); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(); err != nil {
				t.Fatal(err)
			}
			if r, ok := op.(engine.Releaser); ok {
				r.Release()
			}
			got, err := os.ReadFile(filepath.Join(dir, "o"))
			if err != nil {
				t.Fatal(err)
			}
			if threads == 1 {
				want = got
				if n := bytes.Count(got, []byte("\n")); kind != "arrow" && n < 65000 {
					t.Fatalf("%s: %d lines", kind, n)
				}
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s with %d threads: %d bytes differ from one thread's %d", kind, threads, len(got), len(want))
			}
		}
	}
}

// BenchmarkTextSink formats 64Ki-row batches through the csv and ndjson
// sinks on one goroutine and on two: compare threads=1 and threads=2 of the
// same kind in one run (go test -bench TextSink -run ^$ ./operators).
func BenchmarkTextSink(b *testing.B) {
	mem := newMem()
	gf, err := buildFactory(GenerateSpec(), testGenConfig(65536))
	if err != nil {
		b.Fatal(err)
	}
	var scratch []uint32
	batch, err := gf.(*generateFactory).batch(mem, 0, 65536, &scratch)
	if err != nil {
		b.Fatal(err)
	}
	defer batch.Release()
	for _, kind := range []string{"csv", "ndjson"} {
		for _, threads := range []int{1, 2} {
			b.Run(kind+"/threads="+string(rune('0'+threads)), func(b *testing.B) {
				dir := b.TempDir()
				spec, cfg := CSVSinkSpec(), any(&CSVSinkConfig{Path: filepath.Join(dir, "o"), Delimiter: ","})
				if kind == "ndjson" {
					spec, cfg = NDJSONSinkSpec(), &NDJSONSinkConfig{Path: filepath.Join(dir, "o")}
				}
				f, err := buildFactory(spec, cfg, batch.Schema())
				if err != nil {
					b.Fatal(err)
				}
				ic := testIC(mem, "out", kind, 0)
				ic.Settings.Threads = threads
				op, err := f.New(ic)
				if err != nil {
					b.Fatal(err)
				}
				s := op.(engine.Sink)
				defer s.Abort()
				b.SetBytes(engine.BatchBytes(batch))
				b.ResetTimer()
				for range b.N {
					if err := s.Write(context.Background(), 0, batch); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
