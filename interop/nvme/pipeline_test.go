//go:build linux

package nvme

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func zflowBin() string {
	if b := os.Getenv("ZFLOW_BIN"); b != "" {
		return b
	}
	return "zflow"
}

// TestPipelineThroughKernelTarget is check 3: the nvme sink writes an
// Arrow stream into the kernel target's null_blk namespace through our
// initiator, the nvme source reads it back in another zflow process, and
// the CSV equals a direct run's.
func TestPipelineThroughKernelTarget(t *testing.T) {
	guest(t)
	kt := startKernelTarget(t)
	dir := t.TempDir()
	const gen = `{type: generate, rows: 100000, seed: 7, columns: [{name: id, type: int64}, {name: name, type: string}, {name: px, type: float64}]}`
	node := fmt.Sprintf("{type: nvme, address: %s, subnqn: %s, nsid: 1, offset: 8192, queues: 2, queue_depth: 16%%s}", kt.addr, kernelNQN)
	run := func(name, yaml string) {
		t.Helper()
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(zflowBin(), "run", "--quiet", p)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("zflow run %s: %v\n%s", name, err, out)
		}
	}
	run("direct", "version: 1\nname: direct\nsources:\n  g: "+gen+"\nsinks:\n  out: {type: csv, inputs: [g], path: direct.csv}\n")
	run("write", "version: 1\nname: w\nsources:\n  g: "+gen+"\nsinks:\n  out: "+fmt.Sprintf(node, ", inputs: [g]")+"\n")
	run("read", "version: 1\nname: r\nsources:\n  n: "+fmt.Sprintf(node, "")+"\nsinks:\n  out: {type: csv, inputs: [n], path: back.csv}\n")
	a, _ := os.ReadFile(filepath.Join(dir, "direct.csv"))
	b, _ := os.ReadFile(filepath.Join(dir, "back.csv"))
	t.Logf("direct run %d bytes of CSV, through the kernel target %d", len(a), len(b))
	if len(a) < 1<<20 || !bytes.Equal(a, b) {
		t.Fatalf("read back %d bytes of CSV through the kernel target, the direct run wrote %d; equal %v", len(b), len(a), bytes.Equal(a, b))
	}
}
