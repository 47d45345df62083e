//go:build linux

package numa

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPipelineOnNode is checks 2 and 4 end to end through `zflow run`: a
// pipeline whose settings bind its arena to a node (and pin its operators)
// reports, read back from the kernel, that its pages are on that node; on
// the memory-only node the arena binds but pinning degrades, saying why.
func TestPipelineOnNode(t *testing.T) {
	guestMachine(t)
	bin := os.Getenv("ZFLOW_BIN")
	if bin == "" {
		bin = "zflow"
	}
	for _, node := range []int{1, memoryOnly} {
		t.Run(fmt.Sprintf("node=%d", node), func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "p.yaml")
			src := fmt.Sprintf(`version: 1
name: onnode
settings:
  pin: true
  memory: {arena: plain, node: %d, prefault: true}
sources:
  gen: {type: generate, rows: 300000, columns: [{name: qty, type: int64, min: 1, max: 1000}, {name: s, type: string, cardinality: 30}]}
operators:
  big: {type: filter, inputs: [gen], where: "qty > 500"}
sinks:
  out: {type: discard, inputs: [big]}
`, node)
			if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "run", "--json", "--log-level", "info", file)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("zflow run: %v\n%s", err, stderr.String())
			}
			var sum struct {
				Memory struct {
					Arena     string   `json:"arena"`
					Node      int      `json:"node"`
					NodeSeen  int      `json:"node_observed"`
					Mapped    int64    `json:"mapped_bytes"`
					Fallbacks []string `json:"fallbacks"`
				} `json:"memory"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
				t.Fatalf("summary: %v\n%s", err, stdout.String())
			}
			m := sum.Memory
			t.Logf("zflow run, memory.node %d: arena %s node %d, pages observed on node %d, %d MiB mapped, fallbacks %q",
				node, m.Arena, m.Node, m.NodeSeen, m.Mapped>>20, m.Fallbacks)
			if m.Node != node || m.NodeSeen != node || len(m.Fallbacks) != 0 {
				t.Fatalf("arena asked for node %d: report %+v", node, m)
			}
			var pinLines []string
			for _, l := range strings.Split(stderr.String(), "\n") {
				if strings.Contains(l, "pin: operator") {
					pinLines = append(pinLines, l)
					t.Logf("zflow run log: %s", l)
				}
			}
			want := fmt.Sprintf(`on node %d`, node)
			if node == memoryOnly {
				want = "memory only"
			}
			if len(pinLines) != 3 {
				t.Fatalf("want a pin line per operator, got %d:\n%s", len(pinLines), stderr.String())
			}
			for _, l := range pinLines {
				if !strings.Contains(l, want) {
					t.Errorf("pin line %q lacks %q", l, want)
				}
			}
		})
	}
}
