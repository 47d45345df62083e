package topology

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

func TestPick(t *testing.T) {
	for _, tc := range []struct {
		tree, near string
		node       int
		why        string
	}{
		{"two-socket", "", -1, "no placement hint"},
		{"two-socket", "auto", -1, "no placement hint"},
		{"two-socket", "1", 1, "node 1 as asked"},
		{"two-socket", "node0", 0, "node 0 as asked"},
		{"two-socket", "node7", -1, "no node 7 (nodes: 0-1)"},
		{"two-socket", "cpu17", 0, "cpu 17 is on node 0"},
		{"two-socket", "cpu24", 1, "cpu 24 is on node 1"},
		{"two-socket", "cpu99", -1, "cpu 99 is not online (online: 0-31)"},
		{"two-socket", "ens801f0", 1, "ens801f0 is on node 1"},
		{"two-socket", "eno1", 0, "eno1 is on node 0"},
		{"two-socket", "lo", -1, "lo is virtual"},
		{"two-socket", "nvme1", 1, "nvme1 is on node 1"},
		{"two-socket", "nvme0n1", 0, "nvme0n1 is on nvme0, node 0"},
		{"two-socket", "/dev/nvme1n2", 1, "nvme1n2 is on nvme1, node 1"},
		{"two-socket", "eht0", -1, `unknown placement hint "eht0" (want auto, a node, cpuN, a device: eno1, ens801f0, lo, nvme0, nvme1, or a file path)`},
		{"cxl-memory", "", -1, "no placement hint"},
		{"cxl-memory", "2", 2, "node 2 as asked"},
		{"cxl-memory", "dax0.0", 2, "dax0.0 is memory of node 2"},
		{"cxl-memory", "/dev/dax1.0", 2, "dax1.0 is memory of node 2"},
		{"cxl-memory", "eth0", 0, "eth0 is on node 0"},
		{"nvme-tcp", "nvme2", -1, "nvme2: nvme2 is a tcp fabrics controller (traddr=10.0.0.6,trsvcid=4420,src_addr=10.0.0.1) without a NUMA node; place near its NIC"},
		{"nvme-tcp", "nvme1n2", -1, "nvme1n2 is on nvme2: nvme2 is a tcp fabrics controller"},
		{"nvme-tcp", "nvme0n1", -1, "nvme0n1 is reached through tcp fabrics controllers nvme0, nvme1, which have no NUMA node; place near their NICs"},
		{"nvme-tcp", "ens1f0", 1, "ens1f0 is on node 1"},
		// One node with CPUs: a device without a node still lands on it;
		// a hint that names nothing does not.
		{"thismachine", "", 0, "node 0 is the only node with CPUs"},
		{"thismachine", "eth0", 0, "eth0: its device does not report a NUMA node; node 0 is the only node with CPUs"},
		{"thismachine", "ifb0", 0, "ifb0 is virtual (no device); node 0 is the only node with CPUs"},
		{"thismachine", "nvme0", -1, "unknown placement hint"},
		{"thismachine", "1", -1, "no node 1 (nodes: 0)"},
	} {
		m := readTree(t, tc.tree)
		node, why := m.Pick(tc.near)
		if node != tc.node || !strings.Contains(why, tc.why) {
			t.Errorf("%s: Pick(%q) = %d, %q; want %d, %q", tc.tree, tc.near, node, why, tc.node, tc.why)
		}
	}
}

// TestNodeForDev resolves device numbers through the trees' /sys/dev, as
// NodeForPath does after its stat.
func TestNodeForDev(t *testing.T) {
	for _, tc := range []struct {
		tree         string
		char         bool
		major, minor uint32
		node         int
		why          string
	}{
		{"two-socket", false, 259, 0, 0, "nvme0n1 is on nvme0, node 0"},
		{"two-socket", false, 259, 1, 0, "nvme0n1 is on nvme0, node 0"}, // partition nvme0n1p1
		{"two-socket", false, 259, 3, 1, "nvme1n2 is on nvme1, node 1"},
		{"two-socket", false, 8, 0, 0, "sda is on 0000:00:17.0, node 0"}, // SATA: walk up to the PCI function
		{"two-socket", false, 7, 0, -1, "loop0 is virtual"},
		{"two-socket", false, 253, 0, 1, "dm-0: nvme1n1 is on nvme1, node 1"},
		{"two-socket", false, 9, 0, -1, "md0 spans devices on different or unknown nodes (nvme0n1 is on nvme0, node 0; nvme1n2 is on nvme1, node 1)"},
		{"two-socket", false, 0, 45, -1, "device 0:45 is not backed by a block device (tmpfs, proc, overlay, NFS, …)"},
		{"two-socket", false, 9, 9, -1, "device 9:9 has no entry in"},
		{"nvme-tcp", false, 259, 0, -1, "nvme0n1 is reached through tcp fabrics controllers nvme0, nvme1"},
		{"nvme-tcp", false, 259, 2, -1, "nvme1n2 is on nvme2: nvme2 is a tcp fabrics controller"},
		{"cxl-memory", true, 252, 0, 2, "dax0.0 is memory of node 2"},
		{"thismachine", false, 254, 0, -1, "vda is on 0000:00:02.0, which does not report a NUMA node"},
	} {
		m := readTree(t, tc.tree)
		node, why := m.nodeForDev(tc.char, tc.major, tc.minor)
		if node != tc.node || !strings.Contains(why, tc.why) {
			t.Errorf("%s: nodeForDev(%v, %d:%d) = %d, %q; want %d, %q", tc.tree, tc.char, tc.major, tc.minor, node, why, tc.node, tc.why)
		}
	}
}

// TestNodeForPathHost stats real files on this machine: the answer depends
// on the machine, but it is a node that exists or -1, always with a reason.
func TestNodeForPathHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	m, err := Read(Host())
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f, ".", "/dev/null", "/proc/self/status"} {
		node, why := m.NodeForPath(p)
		if _, ok := m.Node(node); node != -1 && !ok || !strings.HasPrefix(why, p+": ") {
			t.Errorf("NodeForPath(%q) = %d, %q", p, node, why)
		}
		t.Logf("NodeForPath(%q) = %d, %s", p, node, why)
	}
	if node, why := m.NodeForPath("/nonexistent/file"); node != -1 || !strings.Contains(why, "no such file") {
		t.Errorf("NodeForPath(missing) = %d, %q", node, why)
	}
	if node, why := m.Pick("/nonexistent/file"); node != -1 || !strings.Contains(why, "no such file") {
		t.Errorf("Pick(missing) = %d, %q", node, why)
	}
}

func TestCPUsOfNode(t *testing.T) {
	m := readTree(t, "cxl-memory")
	cpus, err := m.CPUsOfNode(1)
	if err != nil || FormatCPUList(cpus) != "4-7" {
		t.Errorf("CPUsOfNode(1) = %v, %v", cpus, err)
	}
	cpus[0] = 99 // the caller owns the copy
	if m.Nodes[1].CPUs[0] != 4 {
		t.Error("CPUsOfNode returned the node's own slice")
	}
	for node, want := range map[int]string{2: "topology: cpus of node 2: the node is memory only: invalid argument",
		5: "topology: cpus of node 5: no such node (nodes: 0-2): invalid argument"} {
		_, err := m.CPUsOfNode(node)
		if err == nil || err.Error() != want || !errors.Is(err, syscall.EINVAL) {
			t.Errorf("CPUsOfNode(%d): %v, want %q wrapping EINVAL", node, err, want)
		}
		if err := m.PinCurrentThreadToNode(node); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("PinCurrentThreadToNode(%d): %v", node, err)
		}
	}
}
