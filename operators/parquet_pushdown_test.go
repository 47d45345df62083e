package operators

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/engine"
)

// TestParquetPushdown: a filter's condition pushed into the parquet source
// skips the row groups whose statistics rule it out, and the rows out are
// exactly those of the same run with pushdown: false, for conditions on
// every kind of column it follows, on ones it must not trust (a float's
// maximum), and on ones it does not follow.
func TestParquetPushdown(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	// 3001 rows in row groups of 97: 31 row groups; id runs 0…3000, ts
	// rises 1.5 ms a row from 09:30, price is 1…500.
	path := writeGenerated(t, dir, 3001, "parquet", &ParquetSinkConfig{Path: filepath.Join(dir, "t.parquet"), Compression: "zstd", RowGroupRows: 97, Dictionary: "auto"})
	for _, tc := range []struct {
		where   string
		skipped int64 // of 31
	}{
		{"id >= 2900", 29},
		{"id < 97 OR id > 2999", 29},
		{"2900 <= id", 29},
		{"id BETWEEN 970 AND 1066", 30}, // row group 10 exactly
		{"id BETWEEN 960 AND 1070", 28},
		{"id IN (5, 3000)", 29},
		{"id = -1", 31},
		{"ts < TIMESTAMPTZ '2024-01-02 09:30:00.1+00'", 30}, // 1.5 ms a row: row group 0 only
		{"sym > 'zzzz'", 31},
		{"qty IS NULL", 31},
		{"id >= 2900 AND price > 0", 29},
		{"price > 1000", 0}, // a float's maximum is not trusted
		{"price < 0", 31},
		{"id + 1 > 2900", 0}, // not followed
		{"NOT (id < 2900)", 0},
		{"note = 'plain' AND id < 97", 30},
	} {
		var outs [2][]byte
		for k, push := range []bool{false, true} {
			src := &ParquetSourceConfig{Path: path, HivePartitioning: "auto", Pushdown: push, FileIO: defaultFileIO()}
			out := filepath.Join(dir, "out.csv")
			g := &engine.Graph{Name: "push", Settings: engine.Settings{BatchRows: 250}, Nodes: []*engine.Node{
				{ID: "src", Kind: engine.KindSource, Type: "parquet", Config: src},
				{ID: "f", Kind: engine.KindTransform, Type: "filter", Config: &FilterConfig{Where: tc.where}, Inputs: []string{"src"}},
				{ID: "out", Kind: engine.KindSink, Type: "csv", Config: &CSVSinkConfig{Path: out, Header: true, Delimiter: ","}, Inputs: []string{"f"}},
			}}
			p, err := engine.Compile(g, engine.CompileOptions{})
			if err != nil {
				t.Fatalf("%s: %v", tc.where, err)
			}
			var plan strings.Builder
			p.WriteText(&plan)
			pushed := strings.Contains(plan.String(), fmt.Sprintf("pushdown: %s (from f): row groups whose min/max statistics rule it out are skipped (%d of 31 by the footers now)", tc.where, tc.skipped))
			if pushed != (push && (tc.skipped > 0 || tc.where == "price > 1000")) {
				t.Errorf("%s, pushdown %v: pushed %v:\n%s", tc.where, push, pushed, plan.String())
			}
			sum, err := p.Run(context.Background(), engine.RunOptions{Alloc: mem})
			if err != nil {
				t.Fatalf("%s: %v", tc.where, err)
			}
			src2 := sum.Op("src")
			want := int64(0)
			if push {
				want = tc.skipped
			}
			if src2.BlocksSkipped != want || (pushed && src2.BlocksRead+src2.BlocksSkipped != 31) {
				t.Errorf("%s, pushdown %v: %d row groups skipped, %d read; want %d skipped", tc.where, push, src2.BlocksSkipped, src2.BlocksRead, want)
			}
			if outs[k], err = os.ReadFile(out); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(outs[0], outs[1]) {
			t.Errorf("%s: the rows differ with pushdown (%d bytes against %d)", tc.where, len(outs[1]), len(outs[0]))
		}
	}
}
