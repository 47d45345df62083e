package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func zflowRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func writeTemp(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsage(t *testing.T) {
	if code, _, e := zflowRun(t); code != exitUsage || !strings.Contains(e, "Usage:") {
		t.Fatalf("no args: %d %q", code, e)
	}
	if code, _, e := zflowRun(t, "runn"); code != exitUsage || !strings.Contains(e, `unknown command "runn"`) {
		t.Fatalf("bad command: %d %q", code, e)
	}
	if code, _, e := zflowRun(t, "run", "--bogus", "x.yaml"); code != exitUsage || !strings.Contains(e, "bogus") {
		t.Fatalf("bad flag: %d %q", code, e)
	}
	if code, _, e := zflowRun(t, "run", "/nonexistent.yaml"); code != exitUsage || !strings.Contains(e, "nonexistent.yaml") {
		t.Fatalf("missing file: %d %q", code, e)
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := writeTemp(t, dir, "good.yaml", `
version: 1
name: good
sources:
  g: {type: generate, rows: 10, columns: [{name: qty, type: int64}]}
sinks:
  out: {type: discard, inputs: [g]}
`)
	bad := writeTemp(t, dir, "bad.yaml", `
version: 1
name: bad
sources:
  g: {type: generate, rows: 10, columns: [{name: qty, type: int64}]}
operators:
  f: {type: filtre, inputs: [g], where: "qty > 1"}
sinks:
  out: {type: discard, inputs: [f, gg]}
`)
	code, out, errOut := zflowRun(t, "validate", good, bad)
	if code != exitUsage {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(out, "good.yaml: ok") {
		t.Fatalf("stdout %q", out)
	}
	for _, want := range []string{`bad.yaml:7:13: unknown transform type "filtre", did you mean "filter"?`, `bad.yaml:9:36: input "gg" does not exist, did you mean "g"?`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if code, _, _ := zflowRun(t, "validate", good); code != exitOK {
		t.Fatalf("good file: exit %d", code)
	}
}

func TestPlanAndOperators(t *testing.T) {
	root, _ := filepath.Abs("../..")
	qs := filepath.Join(root, "pipelines/examples/quickstart.yaml")
	code, out, e := zflowRun(t, "plan", qs)
	if code != 0 || !regexp.MustCompile(`big  \[transform filter( ×\d+ ordered)?\] ← trades`).MatchString(out) || !strings.Contains(out, "where: qty > 100") ||
		!regexp.MustCompile(`threads: \d+ CPUs? \(affinity \d+, [^)]*GOMAXPROCS \d+\)`).MatchString(out) {
		t.Fatalf("plan text: %d %s %s", code, out, e)
	}
	code, out, _ = zflowRun(t, "plan", "--format", "dot", qs)
	if code != 0 || !strings.Contains(out, `"big" -> "notional";`) {
		t.Fatalf("plan dot: %d %s", code, out)
	}
	code, out, _ = zflowRun(t, "plan", "--format=json", qs)
	var pi struct{ Nodes []struct{ ID string } }
	if code != 0 || json.Unmarshal([]byte(out), &pi) != nil || len(pi.Nodes) != 6 {
		t.Fatalf("plan json: %d %s", code, out)
	}
	code, out, _ = zflowRun(t, "operators")
	if code != 0 || !strings.Contains(out, "filter") || !strings.Contains(out, "sinks:") {
		t.Fatalf("operators: %s", out)
	}
	code, out, _ = zflowRun(t, "operators", "filter")
	if code != 0 || !strings.Contains(out, "where (string, required)") || !strings.Contains(out, "Example:") {
		t.Fatalf("operators filter: %s", out)
	}
	code, out, _ = zflowRun(t, "operators", "csv") // a source and a sink
	if code != 0 || !strings.Contains(out, "csv (source)") || !strings.Contains(out, "csv (sink)") {
		t.Fatalf("operators csv: %s", out)
	}
	if code, _, e := zflowRun(t, "operators", "filtr"); code != exitUsage || !strings.Contains(e, `did you mean "filter"`) {
		t.Fatalf("operators filtr: %d %s", code, e)
	}
	if code, out, _ := zflowRun(t, "version"); code != 0 || !strings.HasPrefix(out, "zflow ") {
		t.Fatalf("version: %s", out)
	}
}

func TestRunJSONSummary(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	t.Chdir(dir)
	p := writeTemp(t, dir, "p.yaml", `
version: 1
name: j
sources:
  g: {type: generate, rows: 5000, columns: [{name: qty, type: int64, min: 0, max: 9}]}
operators:
  f: {type: filter, inputs: [g], where: "qty < 5"}
sinks:
  out: {type: csv, inputs: [f], path: out/x.csv, header: true}
`)
	code, out, e := zflowRun(t, "run", "--json", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	var sum struct {
		Operators []struct {
			ID     string `json:"id"`
			RowsIn int64  `json:"rows_in"`
		} `json:"operators"`
		Memory *struct {
			Arena     string           `json:"arena"`
			Mapped    int64            `json:"mapped_bytes"`
			ByBacking map[string]int64 `json:"mapped_by_backing"`
		} `json:"memory"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil || len(sum.Operators) != 3 {
		t.Fatalf("json: %v %s", err, out)
	}
	// The default arena, and what it got, read back.
	if m := sum.Memory; m == nil || m.Arena != "hugepage" || m.Mapped == 0 || len(m.ByBacking) == 0 {
		t.Fatalf("memory report: %+v", sum.Memory)
	}
	if _, err := os.Stat(filepath.Join(dir, "out/x.csv")); err != nil {
		t.Fatal(err)
	}
	// The text summary ends with the memory line.
	code, _, e = zflowRun(t, "run", p)
	if code != 0 || !strings.Contains(e, "memory: arena hugepage") || !strings.Contains(e, "→ got ") {
		t.Fatalf("exit %d, summary:\n%s", code, e)
	}
	code, _, e = zflowRun(t, "run", writeTemp(t, dir, "heap.yaml", `
version: 1
name: j
settings: {memory: {arena: heap}}
sources:
  g: {type: generate, rows: 50, columns: [{name: qty, type: int64}]}
sinks:
  out: {type: discard, inputs: [g]}
`))
	if code != 0 || !strings.Contains(e, "memory: Go heap") {
		t.Fatalf("exit %d, summary:\n%s", code, e)
	}
}

// A source that fails mid-way (a malformed CSV row after several good
// batches): exit 1, the error names the operator, and no sink file appears.
func TestRunFailureMidway(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	t.Chdir(dir)
	var csv strings.Builder
	csv.WriteString("id,qty\n")
	for i := 0; i < 20000; i++ {
		if i == 15000 {
			csv.WriteString("15000,not-a-number\n")
			continue
		}
		fmt.Fprintf(&csv, "%d,%d\n", i, i%100)
	}
	writeTemp(t, dir, "in.csv", csv.String())
	p := writeTemp(t, dir, "p.yaml", `
version: 1
name: failing
settings: {batch_rows: 1000}
sources:
  trades: {type: csv, path: in.csv, header: true, columns: [{name: id, type: int64}, {name: qty, type: int64}]}
sinks:
  out: {type: parquet, inputs: [trades], path: out/trades.parquet}
  copy: {type: arrow, inputs: [trades], path: out/trades.arrow}
`)
	code, _, e := zflowRun(t, "run", p)
	if code != exitFailure {
		t.Fatalf("exit %d, want 1: %s", code, e)
	}
	if !strings.Contains(e, `operator "trades" (csv)`) {
		t.Fatalf("error does not name the operator: %s", e)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "out"))
	for _, en := range entries {
		t.Errorf("left in out/: %s", en.Name())
	}
}

// SIGINT mid-run: the real binary stops cleanly, exits 130, and leaves no
// file (final or temporary) behind.
func TestSIGINT(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	p := writeTemp(t, dir, "p.yaml", `
version: 1
name: endless
sources:
  g: {type: generate, rows: 1000000000000, columns: [{name: qty, type: int64}, {name: s, type: string}]}
sinks:
  out: {type: parquet, inputs: [g], path: out/big.parquet}
`)
	cmd := exec.Command(bin, "run", p)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the sink has its temporary file open, then interrupt.
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, _ := os.ReadDir(filepath.Join(dir, "out"))
		if len(entries) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if code != exitInterrupt {
		t.Fatalf("exit %d (%v), want 130; stderr:\n%s", code, err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("stderr: %s", stderr.String())
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "out"))
	for _, en := range entries {
		t.Errorf("left in out/: %s", en.Name())
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// docs/operators.md is generated from the specs; it must be current.
func TestOperatorDocs(t *testing.T) {
	code, out, e := zflowRun(t, "operators", "--markdown")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	path := "../../docs/operators.md"
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != out {
		t.Fatal("docs/operators.md is stale: go test -ldflags=-checklinkname=0 ./cmd/zflow -run TestOperatorDocs -update")
	}
}

// Every bad pipeline of the golden table exits 2 with its golden messages,
// each at file:line:col, and never panics.
func TestBadPipelinesExit2(t *testing.T) {
	// From the pipelines package, as TestBad there: a bad pipeline may read
	// a file by a path relative to it (../testdata/trades.csv).
	t.Chdir("../../pipelines")
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) < 30 {
		t.Fatalf("only %d bad pipelines", len(files))
	}
	for _, f := range files {
		golden, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".golden")
		if err != nil {
			t.Fatal(err)
		}
		code, _, e := zflowRun(t, "validate", f)
		if code != exitUsage || strings.Contains(e, "panic") {
			t.Errorf("%s: exit %d, want 2:\n%s", f, code, e)
			continue
		}
		// The golden names the file by its base name; the CLI by the path given.
		for _, line := range strings.Split(strings.TrimSpace(string(golden)), "\n") {
			if !strings.Contains(e, strings.TrimPrefix(line, filepath.Base(f))) || !strings.Contains(e, f+":") {
				t.Errorf("%s: stderr lacks %q:\n%s", f, line, e)
			}
		}
	}
}

// TestPlanUnionByName: zflow plan shows a union by name's merged schema
// and, per input, the columns it gets as nulls and the casts.
func TestPlanUnionByName(t *testing.T) {
	root, _ := filepath.Abs("../..")
	t.Setenv("ZFLOW_DATA", filepath.Join(root, "testdata"))
	code, out, e := zflowRun(t, "plan", filepath.Join(root, "pipelines/examples/union_by_name.yaml"))
	if code != 0 {
		t.Fatalf("plan: %d %s", code, e)
	}
	if !regexp.MustCompile(`all  \[transform union( ×\d+ ordered)?\] ← east, west, north`).MatchString(out) {
		t.Errorf("plan lacks the union:\n%s", out)
	}
	for _, want := range []string{
		"by name; east: null note, ts; west: null price, ts; north: null note; north: cast qty int32→int64, price float32→float64",
		"schema: region utf8, qty int64, price float64, note utf8, ts timestamp[ms, tz=UTC]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
}
