package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/topology"
)

// TestAutoParallelRun: a pipeline with no hints runs its transforms as one
// instance per CPU this process may use, and writes exactly what a run with
// settings.threads 1 (one instance each) writes, in the same order; the
// threads: 1 run lowers GOMAXPROCS while it runs and puts it back.
func TestAutoParallelRun(t *testing.T) {
	dir := t.TempDir()
	const body = `
sources:
  g: {type: generate, rows: 300000, seed: 7, columns: [{name: id, type: int64, sequence: true}, {name: qty, type: int64, min: 0, max: 99}, {name: sym, type: string, cardinality: 50}]}
operators:
  f: {type: filter, inputs: [g], where: "qty % 3 <> 0"}
  p: {type: project, inputs: [f], columns: [id, "qty * 2 AS q2", "upper(sym) AS s"]}
sinks:
  out: {type: csv, inputs: [p], path: OUT}
`
	run := func(name, settings string) (map[string]int, string) {
		t.Helper()
		out := filepath.Join(dir, name+".csv")
		p := writeTemp(t, dir, name+".yaml", "version: 1\nname: "+name+"\n"+settings+strings.Replace(body, "OUT", out, 1))
		procs := runtime.GOMAXPROCS(0)
		code, stdout, e := zflowRun(t, "run", "--json", p)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, e)
		}
		if runtime.GOMAXPROCS(0) != procs {
			t.Errorf("%s: GOMAXPROCS %d after the run, %d before", name, runtime.GOMAXPROCS(0), procs)
		}
		var sum struct {
			Operators []struct {
				ID        string `json:"id"`
				Instances int    `json:"instances"`
			} `json:"operators"`
		}
		if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		inst := map[string]int{}
		for _, o := range sum.Operators {
			inst[o.ID] = o.Instances
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return inst, string(b)
	}
	n := topology.ReadCPUBudget().N
	auto, got := run("auto", "")
	if auto["f"] != n || auto["p"] != n || auto["g"] != 1 || auto["out"] != 1 {
		t.Errorf("auto on %d CPUs: instances %v", n, auto)
	}
	one, want := run("one", "settings: {threads: 1}\n")
	if one["f"] != 1 || one["p"] != 1 {
		t.Errorf("threads 1: instances %v", one)
	}
	if got != want {
		t.Errorf("auto's output differs from threads 1's (%d vs %d bytes)", len(got), len(want))
	}
	if lines := bytes.Count([]byte(want), []byte("\n")); lines < 150000 {
		t.Errorf("%d lines", lines)
	}
}
