//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/cxl"
)

// TestRunCXLArena: `arena: cxl` makes the segment, every batch is
// allocated in it, the summary names it, and the run leaves it with no
// participant and every extent free.
func TestRunCXLArena(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "zflow-cli-cxl-")
	if err != nil {
		t.Skip(err)
	}
	defer os.RemoveAll(shm)
	seg := filepath.Join(shm, "trades")
	dir := t.TempDir()
	p := writeTemp(t, dir, "cxl.yaml", `
version: 1
name: cxl
settings: {memory: {arena: cxl, path: `+seg+`, size: 64MiB}}
sources:
  g: {type: generate, rows: 200000, seed: 3, columns: [{name: qty, type: int64, min: 0, max: 9}, {name: sym, type: string, cardinality: 5}]}
operators:
  f: {type: filter, inputs: [g], where: "qty < 5"}
sinks:
  out: {type: csv, inputs: [f], path: `+filepath.Join(dir, "out.csv")+`, header: true}
`)
	code, out, e := zflowRun(t, "run", "--json", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	var sum struct {
		Memory *struct {
			Arena  string `json:"arena"`
			Path   string `json:"path"`
			Mapped int64  `json:"mapped_bytes"`
			Peak   int64  `json:"peak_bytes"`
		} `json:"memory"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatal(err)
	}
	if m := sum.Memory; m == nil || m.Arena != "cxl" || m.Path != seg || m.Mapped == 0 || m.Peak == 0 {
		t.Fatalf("memory report: %+v", sum.Memory)
	}
	s, err := cxl.Open(seg, cxl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ps, err := s.Participants(); err != nil || len(ps) != 0 {
		t.Errorf("after the run: participants %+v %v", ps, err)
	}
	csv, err := os.ReadFile(filepath.Join(dir, "out.csv"))
	if err != nil || strings.Count(string(csv), "\n") < 90000 {
		t.Errorf("output: %d lines, %v", strings.Count(string(csv), "\n"), err)
	}
	// The text summary says where the memory was.
	code, _, e = zflowRun(t, "run", p)
	if code != 0 || !strings.Contains(e, "memory: arena cxl at "+seg+" → got ") {
		t.Fatalf("exit %d, summary:\n%s", code, e)
	}
}
