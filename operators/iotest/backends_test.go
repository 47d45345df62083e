package iotest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/storage"
	"github.com/zflowdev/zflow/io/storage/storagetest"
	"github.com/zflowdev/zflow/operators"

	_ "github.com/zflowdev/zflow/io/uring" // every backend, as in the zflow binary
)

var formats = []string{"csv", "ndjson", "parquet", "arrow"}

// sinkConfig is the config of a format's sink writing path through fio.
func sinkConfig(format, path string, fio operators.FileIO) any {
	switch format {
	case "csv":
		c := operators.CSVSinkSpec().NewConfig().(*operators.CSVSinkConfig)
		c.Path, c.FileIO = path, fio
		return c
	case "ndjson":
		c := operators.NDJSONSinkSpec().NewConfig().(*operators.NDJSONSinkConfig)
		c.Path, c.FileIO = path, fio
		return c
	case "parquet":
		c := operators.ParquetSinkSpec().NewConfig().(*operators.ParquetSinkConfig)
		c.Path, c.FileIO = path, fio
		return c
	}
	c := operators.ArrowSinkSpec().NewConfig().(*operators.ArrowSinkConfig)
	c.Path, c.FileIO = path, fio
	return c
}

// sourceConfig is the config of a format's source reading path through fio.
func sourceConfig(format, path string, fio operators.FileIO) any {
	switch format {
	case "csv":
		c := operators.CSVSourceSpec().NewConfig().(*operators.CSVSourceConfig)
		c.Files, c.FileIO = []string{path}, fio
		return c
	case "ndjson":
		c := operators.NDJSONSourceSpec().NewConfig().(*operators.NDJSONSourceConfig)
		c.Files, c.FileIO = []string{path}, fio
		return c
	case "parquet":
		c := operators.ParquetSourceSpec().NewConfig().(*operators.ParquetSourceConfig)
		c.Files, c.FileIO = []string{path}, fio
		return c
	}
	c := operators.ArrowSourceSpec().NewConfig().(*operators.ArrowSourceConfig)
	c.Files, c.FileIO = []string{path}, fio
	return c
}

// generated is a generate source of rows rows of every kind of column.
func generated(rows int64) *engine.Node {
	c := &operators.GenerateConfig{Rows: rows, Seed: 7, Columns: []operators.GenerateColumn{
		{Name: "id", Type: "int64"},
		{Name: "price", Type: "float64", Min: 0, Max: 1000},
		{Name: "symbol", Type: "string", Values: []string{"AAPL", "MSFT", "a \"quoted\", value"}},
		{Name: "ok", Type: "bool"},
		{Name: "ts", Type: "timestamp"},
	}}
	return &engine.Node{ID: "src", Kind: engine.KindSource, Type: "generate", Config: c, ConfigFrom: engine.ConfigLiteral}
}

// run compiles and runs a two-node pipeline (source → sink) on a checked
// allocator, and checks that no byte and no goroutine is left.
func run(t *testing.T, src *engine.Node, sinkType string, sink any) engine.Summary {
	t.Helper()
	sum, err := tryRun(t, src, sinkType, sink)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func tryRun(t *testing.T, src *engine.Node, sinkType string, sink any) (engine.Summary, error) {
	t.Helper()
	g := &engine.Graph{Name: "io", Nodes: []*engine.Node{src,
		{ID: "out", Kind: engine.KindSink, Type: sinkType, Config: sink, Inputs: []string{"src"}, ConfigFrom: engine.ConfigDefaults}}}
	p, err := engine.Compile(g, engine.CompileOptions{})
	if err != nil {
		return engine.Summary{}, err
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	sum, err := p.Run(context.Background(), engine.RunOptions{Alloc: mem})
	mem.AssertSize(t, 0)
	goleak.VerifyNone(t)
	return sum, err
}

// fileSource is a source node of format reading path through fio.
func fileSource(format, path string, fio operators.FileIO) *engine.Node {
	return &engine.Node{ID: "src", Kind: engine.KindSource, Type: format, Config: sourceConfig(format, path, fio), ConfigFrom: engine.ConfigDefaults}
}

// TestEveryBackend writes every format with each backend (mmap only reads:
// its files are written with auto) on tmpfs and on the disk, O_DIRECT too
// on the disk, reads each file back through the same backend into a CSV
// file written with posix, and compares it with the all-posix round trip.
func TestEveryBackend(t *testing.T) {
	places := map[string]string{"tmpfs": storagetest.ShmDir(t), "disk": storagetest.DiskDir(t)}
	type variant struct {
		io     string
		direct bool
	}
	variants := []variant{{"posix", false}, {"uring", false}, {"mmap", false}, {"auto", false}}
	posix := operators.FileIO{IO: "posix"}
	for place, dir := range places {
		vs := variants
		if place == "disk" {
			vs = append(vs, variant{"posix", true}, variant{"uring", true}, variant{"auto", true})
		}
		for _, format := range formats {
			t.Run(place+"/"+format, func(t *testing.T) {
				roundTrip := func(v variant) ([]byte, engine.Summary, engine.Summary) {
					name := v.io
					if v.direct {
						name += "-direct"
					}
					file := filepath.Join(dir, name+"."+format)
					back := filepath.Join(dir, name+"."+format+".csv")
					depth := 0
					if v.io == "uring" && !v.direct {
						depth = 2 // batches of 2 requests: several batches per file
					}
					sinkIO := operators.FileIO{IO: v.io, Direct: v.direct, QueueDepth: depth}
					if v.io == "mmap" {
						sinkIO.IO = "auto"
					}
					wsum := run(t, generated(rowsFor(format)), format, sinkConfig(format, file, sinkIO))
					rsum := run(t, fileSource(format, file, operators.FileIO{IO: v.io, Direct: v.direct, QueueDepth: depth}), "csv", sinkConfig("csv", back, posix))
					b, err := os.ReadFile(back)
					if err != nil {
						t.Fatal(err)
					}
					return b, wsum, rsum
				}
				want, _, _ := roundTrip(variant{"posix", false})
				for _, v := range vs[1:] {
					got, wsum, rsum := roundTrip(v)
					if !bytes.Equal(got, want) {
						t.Errorf("io: %s direct: %v: read back %d bytes that differ from posix's %d", v.io, v.direct, len(got), len(want))
					}
					w, r := wsum.Op("out").IO, rsum.Op("src").IO
					if v.io != "auto" && v.io != "mmap" && !strings.HasPrefix(w, v.io+" (") {
						t.Errorf("io: %s: the sink's summary says %q", v.io, w)
					}
					if v.io != "auto" && !strings.HasPrefix(r, v.io+" (") {
						t.Errorf("io: %s: the source's summary says %q", v.io, r)
					}
					if v.direct && (!strings.Contains(r, "O_DIRECT") || (v.io != "mmap" && !strings.Contains(w, "O_DIRECT"))) {
						t.Errorf("direct: true on the disk: summary says %q and %q", w, r)
					}
				}
			})
		}
	}
}

// TestMappedArrowZeroCopy reads an Arrow IPC file through io: mmap: the
// ledger counts the source's output as by reference to the mapped file,
// and through posix as created.
func TestMappedArrowZeroCopy(t *testing.T) {
	dir := storagetest.ShmDir(t)
	file := filepath.Join(dir, "g.arrow")
	run(t, generated(50_000), "arrow", sinkConfig("arrow", file, operators.FileIO{IO: "auto"}))
	for _, tc := range []struct {
		io     string
		mapped bool
	}{{"mmap", true}, {"auto", true}, {"posix", false}, {"uring", false}} {
		sum := run(t, fileSource("arrow", file, operators.FileIO{IO: tc.io}), "csv", sinkConfig("csv", filepath.Join(dir, tc.io+".csv"), operators.FileIO{IO: "auto"}))
		src := sum.Op("src")
		if tc.io == "auto" && strings.Contains(src.IO, "costs more than copying it on this machine") {
			// auto measured mapping slower than copying on this machine
			// (once per file system, on a large file another test read).
			tc.mapped = false
		}
		ref := src.References["mapped file"]
		switch {
		case tc.mapped && (ref == 0 || ref != src.BytesOut || src.BytesNew != 0):
			t.Errorf("io: %s: %d of %d bytes out by reference to the mapping (created %d), want all", tc.io, ref, src.BytesOut, src.BytesNew)
		case !tc.mapped && ref != 0:
			t.Errorf("io: %s: %d bytes by reference to a mapping", tc.io, ref)
		}
		if tc.io == "auto" && tc.mapped && !strings.HasPrefix(src.IO, "mmap (auto: tmpfs") {
			t.Errorf("io: auto on tmpfs for a whole-file read: %q, want mmap", src.IO)
		}
	}
}

// TestBackendErrors checks the refusals: an explicit backend that cannot
// run (io_uring refused, played with storage.Refuse) fails to compile with
// the reason while auto falls back to posix and says why; mmap cannot
// write; - uses no backend and refuses one asked for; a
// negative queue_depth.
func TestBackendErrors(t *testing.T) {
	dir := storagetest.DiskDir(t)
	csv := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(csv, []byte("a,b\n1,x\n2,y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	refusal := "uring: io_uring is disabled for every process (io_uring_disabled = 2)"
	restore := storage.Refuse("uring", errors.New(refusal))
	defer restore()

	// auto falls back to posix on the disk, and says why.
	sum := run(t, fileSource("csv", csv, operators.FileIO{IO: "auto"}), "csv", sinkConfig("csv", filepath.Join(dir, "out.csv"), operators.FileIO{IO: "auto"}))
	if io := sum.Op("src").IO; !strings.HasPrefix(io, "posix (") || !strings.Contains(io, refusal) {
		t.Errorf("auto with io_uring refused on the disk: %q, want posix with the refusal", io)
	}

	stdinSrc := fileSource("csv", "-", operators.FileIO{IO: "posix"})
	for _, tc := range []struct {
		name     string
		src      *engine.Node
		sinkType string
		sink     any
		want     []string
	}{
		{"uring source refused", fileSource("csv", csv, operators.FileIO{IO: "uring"}), "csv", sinkConfig("csv", filepath.Join(dir, "o1.csv"), operators.FileIO{IO: "auto"}), []string{"io", refusal}},
		{"uring sink refused", fileSource("csv", csv, operators.FileIO{IO: "auto"}), "parquet", sinkConfig("parquet", filepath.Join(dir, "o2.parquet"), operators.FileIO{IO: "uring"}), []string{"io", refusal}},
		{"mmap sink", fileSource("csv", csv, operators.FileIO{IO: "auto"}), "arrow", sinkConfig("arrow", filepath.Join(dir, "o3.arrow"), operators.FileIO{IO: "mmap"}), []string{"io", "mmap only reads"}},
		{"stdin", stdinSrc, "csv", sinkConfig("csv", filepath.Join(dir, "o4.csv"), operators.FileIO{IO: "auto"}), []string{"io", "standard input"}},
		{"stdout", fileSource("csv", csv, operators.FileIO{IO: "auto"}), "csv", sinkConfig("csv", "-", operators.FileIO{IO: "auto", Direct: true}), []string{"io", "standard output"}},
		{"queue_depth", fileSource("csv", csv, operators.FileIO{IO: "auto", QueueDepth: -1}), "csv", sinkConfig("csv", filepath.Join(dir, "o5.csv"), operators.FileIO{IO: "auto"}), []string{"queue_depth", "must be ≥ 0"}},
		{"mmap direct", fileSource("csv", csv, operators.FileIO{IO: "mmap", Direct: true}), "csv", sinkConfig("csv", filepath.Join(dir, "o6.csv"), operators.FileIO{IO: "auto"}), []string{"io", "direct: true"}},
	} {
		_, err := tryRun(t, tc.src, tc.sinkType, tc.sink)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, w)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "o") && e.Name() != "out.csv" {
			t.Errorf("a refused run left %s", e.Name())
		}
	}
}

// rowsFor is how many rows a format's round trip writes: enough for text
// files of several read-ahead batches (more than 4 MiB, and queue_depth 2
// in the uring variant makes 2 MiB batches).
func rowsFor(string) int64 { return 200_000 }
