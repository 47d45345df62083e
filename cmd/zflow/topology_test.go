package main

import (
	"encoding/json"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/topology"
	"github.com/zflowdev/zflow/topology/topologytest"
)

// cxlTree unpacks topology's cxl-memory fake tree and returns the flags
// that point zflow at it.
func cxlTree(t *testing.T) []string {
	dir := topologytest.Tree(t, filepath.Join("..", "..", "topology", "testdata", "trees", "cxl-memory.txtar"))
	return []string{"--sys", filepath.Join(dir, "sys"), "--proc", filepath.Join(dir, "proc")}
}

func TestTopologyFakeTree(t *testing.T) {
	tree := cxlTree(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"topology"}, []string{"memory only (CXL-like)", "dax0.0  /dev/dax0.0  64 GiB", "10 21 14", "eth0  0     10 Gb/s"}},
		{[]string{"topology", "--check"}, []string{"ok       node 2: memory only (CXL-like)", "fix: echo 512 > /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"}},
		{[]string{"doctor"}, []string{"ok       node 2: memory only (CXL-like)", "daxctl reconfigure-device --mode=devdax dax1.0"}},
	} {
		code, out, errOut := zflowRun(t, append(tc.args, tree...)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}

	code, out, errOut := zflowRun(t, append([]string{"topology", "--json"}, tree...)...)
	if code != exitOK {
		t.Fatalf("--json: exit %d: %s", code, errOut)
	}
	var m topology.Machine
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("--json does not parse: %v\n%s", err, out)
	}
	if len(m.Nodes) != 3 || !m.Nodes[2].MemoryOnly() || m.Nodes[2].MemTotal != 128<<30 || len(m.DAX) != 2 {
		t.Errorf("--json: %+v", m)
	}
	var raw struct {
		Nodes []struct {
			MemoryOnly bool `json:"memory_only"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil || len(raw.Nodes) != 3 || !raw.Nodes[2].MemoryOnly || raw.Nodes[0].MemoryOnly {
		t.Errorf("--json memory_only: %+v %v", raw, err)
	}

	code, out, errOut = zflowRun(t, append([]string{"doctor", "--json"}, tree...)...)
	var advice []topology.Advice
	if code != exitOK || json.Unmarshal([]byte(out), &advice) != nil || len(advice) == 0 {
		t.Fatalf("doctor --json: exit %d, %q, %s", code, out, errOut)
	}
	for _, a := range advice {
		if a.Status != topology.StatusOK && a.Status != topology.StatusMissing && a.Status != topology.StatusHint {
			t.Errorf("advice %+v", a)
		}
	}
}

func TestTopologyErrors(t *testing.T) {
	if code, _, e := zflowRun(t, "topology", "extra"); code != exitUsage || !strings.Contains(e, `topology: unexpected argument "extra"`) {
		t.Errorf("extra argument: %d %q", code, e)
	}
	if code, _, e := zflowRun(t, "topology", "--bogus"); code != exitUsage || !strings.Contains(e, "bogus") {
		t.Errorf("bad flag: %d %q", code, e)
	}
	dir := t.TempDir()
	code, _, e := zflowRun(t, "topology", "--sys", dir, "--proc", dir)
	if code != exitFailure || !strings.Contains(e, "zflow: topology: read "+filepath.Join(dir, "sys/kernel/osrelease")) {
		t.Errorf("empty tree: %d %q", code, e)
	}
}

// TestTopologyHost runs on this machine: exit 0 and the tables are there.
func TestTopologyHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sysfs is Linux only")
	}
	for _, args := range [][]string{{"topology"}, {"topology", "--json"}, {"doctor"}} {
		code, out, errOut := zflowRun(t, args...)
		if code != exitOK || out == "" {
			t.Errorf("%v: exit %d: %s", args, code, errOut)
		}
		if args[0] == "topology" && len(args) == 1 && !strings.Contains(out, "NUMA nodes") {
			t.Errorf("%v: no NUMA nodes table:\n%s", args, out)
		}
	}
}
