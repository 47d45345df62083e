package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/engine"
)

// hugepagesFree is the number of free 2 MiB hugepages (HugePages_Free).
func hugepagesFree(t *testing.T) int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		var n int
		if _, err := fmt.Sscanf(s.Text(), "HugePages_Free: %d", &n); err == nil {
			return n
		}
	}
	return 0
}

// TestRunArenaFallbackQuiet: the default arena falls back without a word
// on a machine with no hugepages reserved (the summary still says what it
// got); an arena asked for in the file or with --arena warns once; --quiet
// leaves stderr empty.
func TestRunArenaFallbackQuiet(t *testing.T) {
	if hugepagesFree(t) > 0 {
		t.Skip("hugepages are reserved here: the hugepage arena does not fall back")
	}
	dir := t.TempDir()
	const body = "sources:\n  g: {type: generate, rows: 100, columns: [{name: a, type: int64}]}\nsinks:\n  out: {type: discard, inputs: [g]}\n"
	def := writeTemp(t, dir, "default.yaml", "version: 1\nname: d\n"+body)
	asked := writeTemp(t, dir, "asked.yaml", "version: 1\nname: a\nsettings: {memory: {arena: hugepage}}\n"+body)
	const warning = "level=WARN msg=\"buffers: arena fallback\""
	for _, c := range []struct {
		args    []string
		warn    bool // a fallback warning on stderr
		summary bool // the summary, with the fallback, on stderr
	}{
		{[]string{"run", def}, false, true},
		{[]string{"run", asked}, true, true},
		{[]string{"run", "--arena", "hugepage", def}, true, true},
		{[]string{"run", "--arena=thp", asked}, false, true},
		{[]string{"run", "--quiet", asked}, false, false},
		{[]string{"run", "--quiet", "--arena", "hugepage", def}, false, false},
		{[]string{"run", "--quiet", "--log-level", "warn", asked}, true, false},
	} {
		code, out, errOut := zflowRun(t, c.args...)
		if code != 0 || out != "" {
			t.Errorf("%v: exit %d, stdout %q", c.args, code, out)
		}
		if n := strings.Count(errOut, warning); (n == 1) != c.warn || n > 1 {
			t.Errorf("%v: %d fallback warnings, want %v:\n%s", c.args, n, c.warn, errOut)
		}
		if got := strings.Contains(errOut, "fallback: MAP_HUGETLB") || strings.Contains(errOut, "memory: arena thp"); got != c.summary {
			t.Errorf("%v: summary with the arena's fallback: %v, want %v:\n%s", c.args, got, c.summary, errOut)
		}
		if !c.summary && !c.warn && errOut != "" {
			t.Errorf("%v: stderr %q, want nothing", c.args, errOut)
		}
	}
	if code, _, errOut := zflowRun(t, "run", "--arena", "hugepages", def); code != exitUsage || !strings.Contains(errOut, `--arena hugepages: unknown memory kind "hugepages"`) {
		t.Errorf("--arena hugepages: exit %d, %s", code, errOut)
	}
}

// TestRunJSONFile: --json=FILE puts the summary in FILE, so a stdout sink
// may print its rows; the text summary goes to stderr as usual.
func TestRunJSONFile(t *testing.T) {
	dir := t.TempDir()
	p := writeTemp(t, dir, "p.yaml", "version: 1\nname: j\nsources:\n  g: {type: generate, rows: 3, columns: [{name: a, type: int64, sequence: true, min: 1, max: 3}]}\nsinks:\n  show: {type: stdout, inputs: [g], format: csv}\n")
	sumFile := filepath.Join(dir, "sum", "summary.json")
	code, out, errOut := zflowRun(t, "run", "--json="+sumFile, p)
	if code != 0 || out != "a\n1\n2\n3\n" || !strings.Contains(errOut, `pipeline "j" ok`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	var sum struct {
		Pipeline  string `json:"pipeline"`
		Operators []struct {
			ID     string `json:"id"`
			RowsIn int64  `json:"rows_in"`
		} `json:"operators"`
	}
	b, err := os.ReadFile(sumFile)
	if err != nil || json.Unmarshal(b, &sum) != nil || sum.Pipeline != "j" || len(sum.Operators) != 2 || sum.Operators[1].RowsIn != 3 {
		t.Fatalf("summary file: %v %s", err, b)
	}
	if names := dirList(t, filepath.Dir(sumFile)); len(names) != 1 {
		t.Errorf("files beside the summary: %v", names)
	}
}

// invalidPipeline has two errors, at known places.
const invalidPipeline = `version: 1
name: bad
sources:
  g: {type: generate, rows: 10, columns: [{name: qty, type: int64}]}
operators:
  f: {type: filtre, inputs: [g], where: "qty > 1"}
sinks:
  out: {type: discard, inputs: [f, gg]}
`

// TestJSONErrors: an invalid pipeline under run --json or validate --json
// gives its errors as JSON (on stdout or in the file), exit 2, and no
// output file is left behind.
func TestJSONErrors(t *testing.T) {
	dir := t.TempDir()
	bad := writeTemp(t, dir, "bad.yaml", invalidPipeline)
	good := writeTemp(t, dir, "good.yaml", "version: 1\nname: g\nsources:\n  g: {type: generate, rows: 1, columns: [{name: a, type: int64}]}\nsinks:\n  out: {type: discard, inputs: [g]}\n")
	missing := filepath.Join(dir, "missing.yaml")
	wantBad := []jsonError{
		{File: bad, Line: 6, Col: 13, Message: `unknown transform type "filtre", did you mean "filter"? (known: ` +
			strings.Join(engine.DefaultRegistry.Names(engine.KindTransform), ", ") + `)`},
		{File: bad, Line: 8, Col: 36, Message: `input "gg" does not exist, did you mean "g"?`},
	}
	wantMissing := jsonError{File: missing, Message: "pipelines: read " + missing + ": open " + missing + ": no such file or directory"}
	for _, c := range []struct {
		args   []string
		toFile bool
		want   errorReport
	}{
		{[]string{"run", "--json", bad}, false, errorReport{Files: []fileReport{{bad, false, 2}}, Errors: wantBad}},
		{[]string{"run", "--json=@", bad}, true, errorReport{Files: []fileReport{{bad, false, 2}}, Errors: wantBad}},
		{[]string{"validate", "--json", good, bad, missing}, false, errorReport{
			Files:  []fileReport{{good, true, 0}, {bad, false, 2}, {missing, false, 1}},
			Errors: append(append([]jsonError(nil), wantBad...), wantMissing)}},
		{[]string{"validate", "--json=@", bad}, true, errorReport{Files: []fileReport{{bad, false, 2}}, Errors: wantBad}},
	} {
		out := filepath.Join(t.TempDir(), "errors.json")
		args := append([]string(nil), c.args...)
		for i, a := range args {
			args[i] = strings.Replace(a, "@", out, 1)
		}
		code, stdout, stderr := zflowRun(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want 2 (%s)", c.args, code, stderr)
		}
		b := []byte(stdout)
		if c.toFile {
			if stdout != "" {
				t.Errorf("%v: stdout %q with the JSON in a file", c.args, stdout)
			}
			var err error
			if b, err = os.ReadFile(out); err != nil {
				t.Errorf("%v: %v", c.args, err)
				continue
			}
			if names := dirList(t, filepath.Dir(out)); len(names) != 1 {
				t.Errorf("%v: files beside the JSON: %v", c.args, names)
			}
		}
		var got errorReport
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("%v: not JSON: %v\n%s", c.args, err, b)
			continue
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(c.want)
		if string(gb) != string(wb) {
			t.Errorf("%v:\ngot  %s\nwant %s", c.args, gb, wb)
		}
	}
	// Without --json, validate prints file:line:col lines, as before.
	if code, _, stderr := zflowRun(t, "validate", bad); code != exitUsage || !strings.Contains(stderr, "bad.yaml:6:13: unknown transform type") {
		t.Errorf("validate: exit %d, %s", code, stderr)
	}
}

// TestRunOTLPRefused: a collector address where nothing listens does not
// fail the run; the run reports the undelivered telemetry once, as a
// warning, and --quiet silences it. (Before the reach check, the gRPC
// exporter retried until the 5 s timeout; the test asserts no time.)
func TestRunOTLPRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	dir := t.TempDir()
	p := writeTemp(t, dir, "traced.yaml", tracedPipeline)
	for _, proto := range []string{"grpc", "http"} {
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", proto)
		t.Setenv("OTEL_METRICS_EXPORTER", "otlp")
		code, _, stderr := zflowRun(t, "run", "--trace-exporter", "otlp", "--trace-endpoint", addr, p)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", proto, code, stderr)
		}
		var warnings []string
		for _, l := range strings.Split(stderr, "\n") {
			if strings.Contains(l, "warning") || strings.Contains(l, "WARN") {
				warnings = append(warnings, l)
			}
		}
		want := "zflow: warning: telemetry not delivered (metrics: otlp/" + proto + " " + addr + ", traces: otlp/" + proto + " " + addr + "): collector " + addr + " cannot be reached: dial tcp " + addr + ": connect: connection refused"
		if len(warnings) != 1 || !strings.HasPrefix(warnings[0], want) {
			t.Errorf("%s: warnings %q, want one starting %q", proto, warnings, want)
		}
		if code, _, stderr := zflowRun(t, "run", "--quiet", "--trace-exporter", "otlp", "--trace-endpoint", addr, p); code != 0 || stderr != "" {
			t.Errorf("%s --quiet: exit %d, stderr %q", proto, code, stderr)
		}
	}
}
