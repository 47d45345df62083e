package operators

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/engine"
)

// Every file sink can undo its Commit: Rollback puts back the file it
// replaced (or removes its own if there was none), Forget keeps the new one,
// and neither leaves anything next to it.
func TestFileSinksUndoable(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	gf, err := buildFactory(GenerateSpec(), testGenConfig(50))
	if err != nil {
		t.Fatal(err)
	}
	var scratch []uint32
	batch, err := gf.(*generateFactory).batch(mem, 0, 50, &scratch)
	if err != nil {
		t.Fatal(err)
	}
	defer batch.Release()
	for _, end := range []string{"rollback", "forget"} {
		for _, old := range []string{"", "old contents\n"} {
			dir := t.TempDir()
			for _, tc := range fileSinkCases(dir) {
				path := sinkPath(tc.cfg)
				if old != "" {
					writeTestFile(t, dir, filepath.Base(path), old)
				}
				f, err := buildFactory(tc.spec, tc.cfg, batch.Schema())
				if err != nil {
					t.Fatal(err)
				}
				op, err := f.New(testIC(mem, "out", tc.spec.Name, 0))
				if err != nil {
					t.Fatal(err)
				}
				s, ok := op.(engine.UndoableSink)
				if !ok {
					t.Fatalf("%s: %T is not an engine.UndoableSink", tc.name, op)
				}
				if err := s.Write(context.Background(), 0, batch); err != nil {
					t.Fatal(err)
				}
				if err := s.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				if err := s.Commit(); err != nil {
					t.Fatal(err)
				}
				published, _ := os.ReadFile(path)
				if string(published) == old || len(published) == 0 {
					t.Fatalf("%s: nothing published", tc.name)
				}
				var got []byte
				if end == "rollback" {
					err = s.Rollback()
					got, _ = os.ReadFile(path)
					if string(got) != old {
						t.Errorf("%s: after rollback %q, want %q", tc.name, got, old)
					}
				} else {
					err = s.Forget()
					if got, _ = os.ReadFile(path); string(got) != string(published) {
						t.Errorf("%s: forget changed the file", tc.name)
					}
				}
				if err != nil {
					t.Errorf("%s: %s: %v", tc.name, end, err)
				}
				s.Abort() // the executor may; a no-op now
				if r, ok := op.(engine.Releaser); ok {
					r.Release()
				}
			}
			var want []string
			if old != "" || end == "forget" {
				for _, tc := range fileSinkCases(dir) {
					want = append(want, filepath.Base(sinkPath(tc.cfg)))
				}
				slices.Sort(want)
			}
			if names := dirNames(t, dir); !slices.Equal(names, want) {
				t.Errorf("%s, old %q: directory holds %v, want %v", end, old, names, want)
			}
		}
	}
}

// All sinks or none: three file sinks, the second one's Commit fails for
// real (a non-empty directory appears at its final path between the end of
// the run and the commit). The first sink, already committed, is rolled
// back: no final name changes, pre-existing files keep their bytes, absent
// ones stay absent, and no temporary or kept file is left.
func TestSinksAllOrNone(t *testing.T) {
	for _, preexisting := range []bool{true, false} {
		mem := newMem()
		dir := t.TempDir()
		a, b, c := filepath.Join(dir, "a.parquet"), filepath.Join(dir, "b.csv"), filepath.Join(dir, "c.arrow")
		old := map[string][]byte{}
		if preexisting {
			old[a] = []byte("PAR1 the user's old parquet file\x00\xff")
			old[c] = []byte("ARROW1 the user's old arrow file\n")
			for p, b := range old {
				if err := os.WriteFile(p, b, 0o640); err != nil {
					t.Fatal(err)
				}
			}
		}
		gen := &GenerateConfig{Rows: 5000, Seed: 1, Columns: []GenerateColumn{{Name: "n", Type: "int64", Sequence: true}, {Name: "s", Type: "string"}}}
		g := &engine.Graph{Name: "three", Nodes: []*engine.Node{
			{ID: "gen", Kind: engine.KindSource, Type: "generate", Config: gen},
			{ID: "a", Kind: engine.KindSink, Type: "parquet", Inputs: []string{"gen"}, Config: &ParquetSinkConfig{Path: a, Compression: "snappy", RowGroupRows: 1000, Dictionary: "auto"}},
			{ID: "b", Kind: engine.KindSink, Type: "csv", Inputs: []string{"gen"}, Config: &CSVSinkConfig{Path: b, Header: true, Delimiter: ","}},
			{ID: "c", Kind: engine.KindSink, Type: "arrow", Inputs: []string{"gen"}, Config: &ArrowSinkConfig{Path: c, Format: "file", Compression: "none"}},
		}}
		p, err := engine.Compile(g, engine.CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Run(context.Background(), engine.RunOptions{Alloc: mem, BeforeCommit: func() {
			// Tests run as root: permissions stop nothing, a directory does.
			if err := os.MkdirAll(filepath.Join(b, "blocker"), 0o755); err != nil {
				t.Error(err)
			}
		}})
		if err == nil || !strings.Contains(err.Error(), `commit sink "b"`) {
			t.Fatalf("preexisting %v: error %v, want the commit of b to fail", preexisting, err)
		}
		for _, p := range []string{a, c} {
			got, err := os.ReadFile(p)
			switch {
			case old[p] == nil && !os.IsNotExist(err):
				t.Errorf("%s: exists after the failed run (%v)", p, err)
			case old[p] != nil && string(got) != string(old[p]):
				t.Errorf("%s: %d bytes (%q…), want the old %q (%v)", p, len(got), got[:min(len(got), 16)], old[p], err)
			}
		}
		if old[a] != nil {
			if st, _ := os.Stat(a); st.Mode().Perm() != 0o640 {
				t.Errorf("restored mode %v", st.Mode().Perm())
			}
		}
		want := []string{"b.csv"} // the injected directory
		if preexisting {
			want = []string{"a.parquet", "b.csv", "c.arrow"}
		}
		if names := dirNames(t, dir); !slices.Equal(names, want) {
			t.Errorf("preexisting %v: directory holds %v, want %v", preexisting, names, want)
		}
		if names := dirNames(t, b); !slices.Equal(names, []string{"blocker"}) {
			t.Errorf("the blocking directory holds %v", names)
		}
		mem.AssertSize(t, 0)
	}
}
