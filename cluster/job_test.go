package cluster_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/cluster"
	"github.com/zflowdev/zflow/engine"
	_ "github.com/zflowdev/zflow/operators"
)

// csvPipeline reads every CSV file of in/ and writes the large trades to
// out/large.csv; dir is the host path.
func csvPipeline(dir string, workers int) string {
	return fmt.Sprintf(`version: 1
name: Large Trades
settings:
  memory: {arena: heap}
  cluster: {workers: %d, host_paths: [%s]}
sources:
  trades: {type: csv, path: in/*.csv}
operators:
  large: {type: filter, inputs: [trades], where: "qty >= 50"}
sinks:
  out: {type: csv, inputs: [large], path: out/large.csv}
`, workers, dir)
}

func writeInputs(t *testing.T, dir string, files, rows int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	for f := range files {
		var b strings.Builder
		b.WriteString("id,symbol,qty\n")
		for r := range rows {
			fmt.Fprintf(&b, "%d,S%d,%d\n", f*rows+r, r%7, (f*rows+r)%100)
		}
		if err := os.WriteFile(filepath.Join(dir, "in", fmt.Sprintf("t%02d.csv", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// rows reads the data lines of every CSV file at path (a file, or a
// directory of part files), sorted.
func rows(t *testing.T, path string) []string {
	t.Helper()
	files := []string{path}
	if st, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if st.IsDir() {
		files, _ = filepath.Glob(filepath.Join(path, "*"))
	}
	var out []string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for first := true; sc.Scan(); first = false {
			if !first {
				out = append(out, sc.Text())
			}
		}
		fh.Close()
	}
	slices.Sort(out)
	return out
}

// runWorker runs worker i of the job in this process, as a pod would.
func runWorker(t *testing.T, job *cluster.Job, i int, attempt string) cluster.Report {
	t.Helper()
	p, err := zflow.Parse(job.Src, job.File, zflow.WithRewrite(func(g *engine.Graph) error {
		return job.WorkerGraph(g, i, attempt, nil)
	}))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := p.Run(context.Background())
	return cluster.NewReport(i, attempt, sum, err)
}

// TestShardedRunPublishes: three workers each read their share of eight
// CSV files and write a part; a stray attempt of worker 1 (a pod that
// died) is never published; the published directory holds exactly the
// rows one process writes.
func TestShardedRunPublishes(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	writeInputs(t, dir, 8, 500)

	one, err := cluster.Prepare([]byte(csvPipeline(dir, 1)), "p.yaml", cluster.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if r := runWorker(t, one, 0, "solo"); r.Err != "" {
		t.Fatal(r.Err)
	}
	if err := one.Publish([]string{"solo"}); err != nil {
		t.Fatal(err)
	}
	if err := one.Discard(); err != nil {
		t.Fatal(err)
	}
	want := rows(t, filepath.Join(dir, "out/large.csv"))
	if len(want) != 8*500/2 {
		t.Fatalf("one worker wrote %d rows, want %d", len(want), 8*500/2)
	}

	job, err := cluster.Prepare([]byte(csvPipeline(dir, 3)), "p.yaml", cluster.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(job.RunID, "zflow-large-trades-") || len(job.Sinks) != 1 || !job.Sources[0].Split {
		t.Fatalf("job: %+v", job)
	}
	// The attempt that died: it wrote part of its output, never published.
	stray := filepath.Join(dir, "out", cluster.StagePrefix+job.RunID, "out", "dead", "part-00001.csv")
	if err := os.MkdirAll(filepath.Dir(stray), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stray, []byte("id,symbol,qty\n999999,X,99\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var reports []cluster.Report
	winners := []string{"a0", "a1", "a2"}
	for i, a := range winners {
		r := runWorker(t, job, i, a)
		if r.Err != "" {
			t.Fatal(r.Err)
		}
		back, err := cluster.DecodeReport(r.Encode())
		if err != nil || back.Index != i || back.Attempt != a {
			t.Fatalf("report %d: %+v %v", i, back, err)
		}
		reports = append(reports, back)
	}
	// Nothing is published before phase two.
	if got := rows(t, filepath.Join(dir, "out/large.csv")); !slices.Equal(got, want) {
		t.Fatal("the workers changed the published output before the coordinator published")
	}
	if err := job.Publish(winners); err != nil {
		t.Fatal(err)
	}
	if err := job.Discard(); err != nil {
		t.Fatal(err)
	}
	got := rows(t, filepath.Join(dir, "out/large.csv"))
	if !slices.Equal(got, want) {
		t.Fatalf("3 workers published %d rows, 1 worker %d", len(got), len(want))
	}
	parts, _ := filepath.Glob(filepath.Join(dir, "out/large.csv/*"))
	if len(parts) != 3 || filepath.Base(parts[2]) != "part-00002.csv" {
		t.Fatalf("parts: %v", parts)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "out", cluster.StagePrefix+"*")); len(left) != 0 {
		t.Fatalf("staging left behind: %v", left)
	}
	sum := cluster.Merge(job.Name, reports)
	var src, sink engine.OpStats
	for _, o := range sum.Ops {
		switch o.ID {
		case "trades":
			src = o
		case "out":
			sink = o
		}
	}
	if src.RowsOut != 8*500 || sink.RowsIn != int64(len(want)) || src.Files != 8 || src.Instances != 3 {
		t.Fatalf("merged summary: source %+v sink %+v", src, sink)
	}
}

func TestPrepareRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, yaml, want string }{
		{"aggregate on 3 workers", `version: 1
name: agg
settings: {cluster: {workers: 3, host_paths: [DIR]}}
sources: {t: {type: generate, rows: 10, columns: [{name: k, type: int64}]}}
operators: {a: {type: aggregate, inputs: [t], group_by: [k], aggregates: {n: "count(*)"}}}
sinks: {o: {type: csv, inputs: [a], path: DIR/o.csv}}
`, "keeps state across them"},
		{"outside the host paths", `version: 1
name: out
settings: {cluster: {workers: 2, host_paths: [DIR]}}
sources: {t: {type: generate, rows: 10, columns: [{name: k, type: int64}]}}
sinks: {o: {type: csv, inputs: [t], path: /elsewhere/o.csv}}
`, "under none of settings.cluster.host_paths"},
		{"stdout", `version: 1
name: out
settings: {cluster: {workers: 2, host_paths: [DIR]}}
sources: {t: {type: generate, rows: 10, columns: [{name: k, type: int64}]}}
sinks: {o: {type: stdout, inputs: [t]}}
`, "writes no file"},
		{"no host paths", `version: 1
name: out
sources: {t: {type: generate, rows: 10, columns: [{name: k, type: int64}]}}
sinks: {o: {type: csv, inputs: [t], path: o.csv}}
`, "names no directory the workers share"},
	} {
		_, err := cluster.Prepare([]byte(strings.ReplaceAll(c.yaml, "DIR", dir)), "p.yaml", cluster.Options{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestReportFits: a report too large for a termination message drops its
// memory report, then operators, and says so; the error is shortened.
func TestReportFits(t *testing.T) {
	r := cluster.Report{Index: 2, Attempt: "pod-x", Err: strings.Repeat("e", 5000), Memory: &engine.MemoryReport{Arena: "hugepage", Peak: 1 << 30}}
	for i := range 200 {
		r.Ops = append(r.Ops, cluster.OpReport{ID: fmt.Sprintf("operator_%03d", i), RowsIn: 1 << 40, RowsOut: 1 << 40})
	}
	b := r.Encode()
	if len(b) > cluster.MaxReport {
		t.Fatalf("%d bytes", len(b))
	}
	back, err := cluster.DecodeReport(b)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Cut || back.Memory != nil || len(back.Ops) == 0 || len(back.Ops) >= 200 || len(back.Err) > cluster.MaxReport/4+4 {
		t.Fatalf("cut %v, memory %v, %d ops, error of %d bytes", back.Cut, back.Memory, len(back.Ops), len(back.Err))
	}
	small := cluster.Report{Index: 0, Attempt: "a", Memory: &engine.MemoryReport{Arena: "heap", Peak: 5}, Ops: r.Ops[:3]}
	if back, _ := cluster.DecodeReport(small.Encode()); back.Cut || back.Memory == nil || len(back.Ops) != 3 {
		t.Fatalf("a small report lost something: %+v", back)
	}
	if _, err := cluster.DecodeReport([]byte("Error: OOMKilled")); err == nil {
		t.Fatal("a message that is no report decoded")
	}
}

// TestIdleWorkerWritesEmptyPart: with more workers than input files, a
// worker with no share still writes its (empty) part, so the published
// directory has one part per worker and the rows of one process.
func TestIdleWorkerWritesEmptyPart(t *testing.T) {
	dir := t.TempDir()
	writeInputs(t, dir, 2, 100)
	for _, sink := range []string{"csv", "parquet", "ndjson", "arrow"} {
		src := strings.ReplaceAll(csvPipeline(dir, 3), "type: csv, inputs: [large], path: out/large.csv", "type: "+sink+", inputs: [large], path: out/large."+sink)
		job, err := cluster.Prepare([]byte(src), "p.yaml", cluster.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		var rowsOut int64
		for i := range 3 {
			r := runWorker(t, job, i, fmt.Sprintf("a%d", i))
			if r.Err != "" {
				t.Fatalf("%s: worker %d: %s", sink, i, r.Err)
			}
			for _, o := range r.Ops {
				if o.ID == "out" {
					rowsOut += o.RowsIn
				}
			}
		}
		if err := job.Publish([]string{"a0", "a1", "a2"}); err != nil {
			t.Fatalf("%s: %v", sink, err)
		}
		if err := job.Discard(); err != nil {
			t.Fatal(err)
		}
		parts, _ := filepath.Glob(filepath.Join(dir, "out/large."+sink, "part-*"))
		if len(parts) != 3 || rowsOut != 100 {
			t.Fatalf("%s: parts %v, %d rows written", sink, parts, rowsOut)
		}
	}
}

// TestReportEscapedError: an error whose bytes JSON escapes to six each
// still makes a report that fits and decodes.
func TestReportEscapedError(t *testing.T) {
	r := cluster.Report{Index: 1, Attempt: "p", Err: strings.Repeat("<é>", 3000)}
	b := r.Encode()
	back, err := cluster.DecodeReport(b)
	if len(b) > cluster.MaxReport || err != nil || back.Index != 1 || !strings.HasPrefix(back.Err, "<é>") {
		t.Fatalf("%d bytes, %v, %+v", len(b), err, back.Index)
	}
}

func TestPrepareRefusesRunIDAndHostPathItself(t *testing.T) {
	dir := t.TempDir()
	if _, err := cluster.Prepare([]byte(csvPipeline(dir, 2)), "p.yaml", cluster.Options{Dir: dir, RunID: "z/../.."}); err == nil {
		t.Fatal("a run id with a path in it was taken")
	}
	src := strings.ReplaceAll(csvPipeline(dir, 2), "path: out/large.csv", "path: "+dir)
	if _, err := cluster.Prepare([]byte(src), "p.yaml", cluster.Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "under none") {
		t.Fatalf("a sink writing the host path itself: %v", err)
	}
}

// TestNeeds: what the pipeline binds or maps becomes node labels the
// workers' nodes must have.
func TestNeeds(t *testing.T) {
	dir := t.TempDir()
	writeInputs(t, dir, 1, 10)
	src := strings.Replace(csvPipeline(dir, 2), "  memory: {arena: heap}\n", "  memory: {arena: cxl, path: /dev/dax0.0, size: 64MiB, node: 1}\n", 1)
	job, err := cluster.Prepare([]byte(src), "p.yaml", cluster.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(job.Needs)
	if len(job.Needs) != 2 || !strings.Contains(got, "zflow.dev/dax.dax0.0 Exists") || !strings.Contains(got, "zflow.dev/numa-nodes Gt 1") {
		t.Fatalf("needs: %v", job.Needs)
	}
}
