package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tracedPipeline = `version: 1
name: traced
settings: {batch_rows: 1000, trace: {batches: 1}}
sources:
  gen: {type: generate, rows: 5000, columns: [{name: a, type: int64}]}
operators:
  keep: {type: filter, inputs: [gen], where: "a >= 0", parallelism: 1}
sinks:
  out: {type: discard, inputs: [keep]}
`

// TestRunTraceFile: --trace-file writes the run's spans as OTLP/JSON, with
// the per-batch spans settings.trace.batches asks for.
func TestRunTraceFile(t *testing.T) {
	dir := t.TempDir()
	p := writeTemp(t, dir, "traced.yaml", tracedPipeline)
	out := filepath.Join(dir, "spans.json")
	code, _, stderr := zflowRun(t, "run", "--quiet", "--trace-file", out, p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var td struct {
		ResourceSpans []struct {
			ScopeSpans []struct {
				Spans []struct {
					Name         string `json:"name"`
					ParentSpanID string `json:"parentSpanId"`
				} `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"resourceSpans"`
	}
	if err := json.Unmarshal(b, &td); err != nil {
		t.Fatalf("trace file is not OTLP/JSON: %v", err)
	}
	count := map[string]int{}
	for _, s := range td.ResourceSpans[0].ScopeSpans[0].Spans {
		count[s.Name]++
	}
	want := map[string]int{"zflow run traced": 1, "generate gen": 1, "filter keep": 1, "discard out": 1,
		"batch gen": 5, "batch keep": 5, "batch out": 5}
	for k, v := range want {
		if count[k] != v {
			t.Errorf("%d spans %q, want %d (all: %v)", count[k], k, v, count)
		}
	}
	// --trace-batches overrides the file.
	code, _, stderr = zflowRun(t, "run", "--quiet", "--trace-file", out, "--trace-batches", "0", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(out); strings.Contains(string(b), `"batch gen"`) {
		t.Error("--trace-batches 0 still traced batches")
	}
}

func TestRunTelemetryErrors(t *testing.T) {
	dir := t.TempDir()
	p := writeTemp(t, dir, "traced.yaml", tracedPipeline)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--trace-exporter", "zipkin"}, nil, `trace exporter "zipkin"`},
		{[]string{"--trace-batches", "2"}, nil, "--trace-batches 2: want 0 to 1"},
		{[]string{"--metrics-addr", "nonsense"}, nil, "metrics endpoint"},
		{nil, map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, `OTEL_TRACES_SAMPLER="sometimes"`},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		code, _, stderr := zflowRun(t, append(append([]string{"run", "--quiet"}, tc.args...), p)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v %v: exit %d, stderr %q; want 2 and %q", tc.args, tc.env, code, stderr, tc.want)
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
}
