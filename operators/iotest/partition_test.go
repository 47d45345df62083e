package iotest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/storage/storagetest"
	"github.com/zflowdev/zflow/operators"
)

// partitioned is format's sink config writing a tree at path partitioned
// by symbol, with at most two files open (so partitions reopen in new part
// files).
func partitioned(format, path string, fio operators.FileIO) any {
	c := sinkConfig(format, path, fio)
	switch c := c.(type) {
	case *operators.CSVSinkConfig:
		c.PartitionBy, c.MaxOpenFiles = []string{"symbol"}, 2
	case *operators.NDJSONSinkConfig:
		c.PartitionBy, c.MaxOpenFiles = []string{"symbol"}, 2
	case *operators.ParquetSinkConfig:
		c.PartitionBy, c.MaxOpenFiles = []string{"symbol"}, 2
	}
	return c
}

// sortedLines is b's lines, sorted (a tree's files are read in path order,
// not in the order the rows were written).
func sortedLines(b []byte) []string {
	lines := strings.Split(string(b), "\n")
	slices.Sort(lines)
	return lines
}

// TestPartitionedEveryBackend writes a partitioned tree with each format's
// sink through each backend that writes (posix, uring, auto), on tmpfs and
// on the disk, with O_DIRECT on the disk: the part files go through the
// backend (the summary's io line names it, and O_DIRECT), and the tree
// reads back to the same rows as the posix tree.
func TestPartitionedEveryBackend(t *testing.T) {
	places := map[string]string{"tmpfs": storagetest.ShmDir(t), "disk": storagetest.DiskDir(t)}
	type variant struct {
		io     string
		direct bool
	}
	posix := operators.FileIO{IO: "posix"}
	for place, dir := range places {
		vs := []variant{{"posix", false}, {"uring", false}, {"auto", false}}
		if place == "disk" {
			vs = append(vs, variant{"posix", true}, variant{"uring", true}, variant{"auto", true})
		}
		for _, format := range []string{"csv", "ndjson", "parquet"} {
			var want []string
			for _, v := range vs {
				name := fmt.Sprintf("%s/%s/%s/direct=%v", place, format, v.io, v.direct)
				t.Run(name, func(t *testing.T) {
					tree := filepath.Join(dir, strings.ReplaceAll(name, "/", "_"))
					fio := operators.FileIO{IO: v.io, Direct: v.direct}
					wsum := run(t, generated(30_000), format, partitioned(format, tree, fio))
					w := wsum.Op("out")
					if v.io != "auto" && !strings.HasPrefix(w.IO, v.io+" (") {
						t.Errorf("the partitioned sink's summary says %q, want %s", w.IO, v.io)
					}
					if v.direct != strings.Contains(w.IO, "O_DIRECT") {
						t.Errorf("direct: %v: the partitioned sink's summary says %q", v.direct, w.IO)
					}
					if w.Files < 3 {
						t.Errorf("%d part files, want at least one per symbol", w.Files)
					}
					back := tree + ".csv"
					run(t, fileSource(format, tree, posix), "csv", sinkConfig("csv", back, posix))
					b, err := os.ReadFile(back)
					if err != nil {
						t.Fatal(err)
					}
					got := sortedLines(b)
					if want == nil {
						want = got
					} else if !slices.Equal(got, want) {
						t.Errorf("the tree reads back %d lines that differ from the posix tree's %d", len(got), len(want))
					}
				})
			}
		}
	}
}

// TestStdioPlan checks that a source reading - and sinks writing - (a
// file sink's path -, the stdout sink) say io: stdio with the reason in the
// plan and in the summary, instead of naming a backend they do not use.
func TestStdioPlan(t *testing.T) {
	csvIn := &engine.Node{ID: "src", Kind: engine.KindSource, Type: "csv", Config: sourceConfig("csv", "-", operators.FileIO{IO: "auto"}), ConfigFrom: engine.ConfigDefaults}
	for _, sink := range []*engine.Node{
		{ID: "out", Kind: engine.KindSink, Type: "csv", Config: sinkConfig("csv", "-", operators.FileIO{IO: "auto"}), Inputs: []string{"src"}, ConfigFrom: engine.ConfigDefaults},
		{ID: "out", Kind: engine.KindSink, Type: "stdout", Config: operators.StdoutSpec().NewConfig(), Inputs: []string{"src"}, ConfigFrom: engine.ConfigDefaults},
	} {
		g := &engine.Graph{Name: "stdio", Nodes: []*engine.Node{csvIn, sink}}
		p, err := engine.Compile(g, engine.CompileOptions{Stdin: strings.NewReader("a,b\n1,x\n2,y\n")})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range p.Describe().Nodes {
			if !strings.HasPrefix(n.IO, "stdio (") || !strings.Contains(n.IO, "standard input or output") {
				t.Errorf("%s %s: plan io line %q, want stdio with the reason", n.Type, n.ID, n.IO)
			}
		}
		var text bytes.Buffer
		if err := p.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		if strings.Count(text.String(), "io: stdio (") != 2 {
			t.Errorf("plan text does not say io: stdio for both nodes:\n%s", text.String())
		}
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		sum, err := p.Run(context.Background(), engine.RunOptions{Alloc: mem, Stdout: &bytes.Buffer{}})
		mem.AssertSize(t, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"src", "out"} {
			if io := sum.Op(id).IO; !strings.HasPrefix(io, "stdio (") {
				t.Errorf("%s: summary io %q, want stdio", id, io)
			}
		}
	}
}
