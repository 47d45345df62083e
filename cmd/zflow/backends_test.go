package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/goccy/go-yaml"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/io/storage/storagetest"
)

// fileTypes are the operator types that read or write files through a
// storage backend.
var fileTypes = []string{"csv", "ndjson", "parquet", "arrow", "raw"}

// withIO rewrites a pipeline so that every file source and sink asks for
// the given io: and direct: (sinks never mmap, which only reads: they keep
// auto then; partitioned sinks write their part files through the
// backend too).
func withIO(t *testing.T, src []byte, kind string, direct bool) []byte {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"sources", "sinks"} {
		nodes, _ := doc[section].(map[string]any)
		for _, n := range nodes {
			node, _ := n.(map[string]any)
			if typ, _ := node["type"].(string); !slices.Contains(fileTypes, typ) {
				continue
			}
			if section == "sinks" && kind == "mmap" {
				continue
			}
			node["io"], node["direct"] = kind, direct
		}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runExampleIn runs the pipeline src with its data in data and its
// outputs under dir, on a checked allocator, and returns the files it
// wrote (relative name → bytes) and its summary's io lines.
func runExampleIn(t *testing.T, src []byte, name, data, dir string) (map[string][]byte, []string) {
	t.Helper()
	env := func(k string) (string, bool) {
		if k == "ZFLOW_DATA" {
			return data, true
		}
		return os.LookupEnv(k)
	}
	t.Chdir(dir) // before Parse: the sinks' backends are chosen for where they write
	p, err := zflow.Parse(src, name, zflow.WithEnv(env))
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, src)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	sum, err := p.Run(context.Background(), zflow.WithAllocator(mem))
	if err != nil {
		t.Fatalf("run %s: %v", name, err)
	}
	mem.AssertSize(t, 0)
	goleak.VerifyNone(t)
	var lines []string
	for _, o := range sum.Ops {
		if o.IO != "" {
			lines = append(lines, o.ID+": "+o.IO)
		}
	}
	files := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		files[rel] = b
		return nil
	})
	return files, lines
}

// canonical is a written file's rows as sorted text, with the data
// folder's path replaced: the examples' unordered operators and the
// partitioned sinks do not fix the order of rows, and a filename column
// names the folder the data was read from.
func canonical(t *testing.T, name string, b []byte, data string) []string {
	t.Helper()
	var text bytes.Buffer
	mem := memory.NewGoAllocator()
	switch filepath.Ext(name) {
	case ".parquet":
		tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(b), nil, pqarrow.ArrowReadProperties{}, mem)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer tbl.Release()
		tr := array.NewTableReader(tbl, 1<<16)
		defer tr.Release()
		for tr.Next() {
			if err := array.RecordToJSON(tr.RecordBatch(), &text); err != nil {
				t.Fatal(err)
			}
		}
	case ".arrow":
		r, err := ipc.NewFileReader(bytes.NewReader(b), ipc.WithAllocator(mem))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer r.Close()
		for i := range r.NumRecords() {
			rec, err := r.RecordBatchAt(i)
			if err != nil {
				t.Fatal(err)
			}
			err = array.RecordToJSON(rec, &text)
			rec.Release()
			if err != nil {
				t.Fatal(err)
			}
		}
	default:
		text.Write(b)
	}
	lines := strings.Split(strings.ReplaceAll(text.String(), data, "$DATA"), "\n")
	slices.Sort(lines)
	return lines
}

// copyTree copies the directory from into to.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// TestExamplesOnEveryBackend runs every example pipeline with its file
// sources and sinks forced onto each storage backend, on tmpfs and on the
// disk, with O_DIRECT on the disk too: every run writes the same bytes as
// the posix run on the disk.
func TestExamplesOnEveryBackend(t *testing.T) {
	examples, err := filepath.Glob("../../pipelines/examples/*.yaml")
	if err != nil || len(examples) < 3 {
		t.Fatalf("examples: %v %v", examples, err)
	}
	repoData, err := filepath.Abs("../../testdata")
	if err != nil {
		t.Fatal(err)
	}
	shm, disk := storagetest.ShmDir(t), storagetest.DiskDir(t) // before any t.Chdir
	shmData := filepath.Join(shm, "testdata")
	copyTree(t, repoData, shmData)
	type variant struct {
		place, kind string
		direct      bool
	}
	variants := []variant{{"disk", "posix", false}}
	for _, place := range []string{"disk", "tmpfs"} {
		for _, kind := range []string{"auto", "posix", "uring", "mmap"} {
			if place != "disk" || kind != "posix" {
				variants = append(variants, variant{place, kind, false})
			}
		}
	}
	variants = append(variants, variant{"disk", "posix", true}, variant{"disk", "uring", true}, variant{"disk", "auto", true})
	for _, ex := range examples {
		src, err := os.ReadFile(ex)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(ex)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			var want map[string][]byte
			for _, v := range variants {
				data, base := repoData, disk
				if v.place == "tmpfs" {
					data, base = shmData, shm
				}
				dir, err := os.MkdirTemp(base, "run-")
				if err != nil {
					t.Fatal(err)
				}
				label := v.place + "/" + v.kind
				if v.direct {
					label += "+direct"
				}
				got, lines := runExampleIn(t, withIO(t, src, v.kind, v.direct), name, data, dir)
				t.Logf("%s: %s", label, strings.Join(lines, "; "))
				for _, l := range lines {
					if v.kind != "auto" && !strings.Contains(l, ": stdio (") && !strings.Contains(l, ": "+v.kind+" ") && !(v.kind == "mmap" && strings.Contains(l, "auto:")) {
						t.Errorf("%s: summary io line %q, want %s", label, l, v.kind)
					}
				}
				if want == nil {
					if len(got) == 0 {
						t.Fatalf("%s: no output", label)
					}
					want = got
					continue
				}
				if len(got) != len(want) {
					t.Errorf("%s: wrote %d files, posix %d", label, len(got), len(want))
				}
				for f, b := range want {
					w, g := canonical(t, f, b, repoData), canonical(t, f, got[f], data)
					if !slices.Equal(w, g) {
						t.Errorf("%s: %s differs from the posix run's (%d rows, want %d)", label, f, len(g), len(w))
					}
				}
			}
		})
	}
}
