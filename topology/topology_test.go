package topology

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/topology/topologytest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

var trees = []string{"thismachine", "two-socket", "cxl-memory", "nvme-tcp"}

// tree unpacks testdata/trees/NAME.txtar and returns its Root.
func tree(t *testing.T, name string) Root {
	t.Helper()
	dir := topologytest.Tree(t, filepath.Join("testdata", "trees", name+".txtar"))
	return Root{Sys: filepath.Join(dir, "sys"), Proc: filepath.Join(dir, "proc")}
}

func readTree(t *testing.T, name string) *Machine {
	t.Helper()
	m, err := Read(tree(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGolden prints every tree as text, JSON and doctor advice and compares
// with testdata/golden; -update rewrites them.
func TestGolden(t *testing.T) {
	for _, name := range trees {
		t.Run(name, func(t *testing.T) {
			m := readTree(t, name)
			for _, out := range []struct {
				ext   string
				write func(*bytes.Buffer) error
			}{
				{".txt", func(b *bytes.Buffer) error { return m.WriteText(b) }},
				{".json", func(b *bytes.Buffer) error { return m.WriteJSON(b) }},
				{".check.txt", func(b *bytes.Buffer) error { return m.WriteCheck(b) }},
			} {
				var got bytes.Buffer
				if err := out.write(&got); err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", "golden", name+out.ext)
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./topology -run TestGolden -update)", err)
				}
				if got.String() != string(want) {
					t.Errorf("%s differs (go test ./topology -run TestGolden -update rewrites it); got:\n%s", golden, got.String())
				}
			}
		})
	}
}

// TestJSONRoundTrip: the JSON form reads back into the same Machine.
func TestJSONRoundTrip(t *testing.T) {
	for _, name := range trees {
		m := readTree(t, name)
		var b bytes.Buffer
		if err := m.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		var back Machine
		if err := json.Unmarshal(b.Bytes(), &back); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back.root = m.root
		if !reflect.DeepEqual(*m, back) {
			t.Errorf("%s: JSON round trip differs:\n%+v\n%+v", name, *m, back)
		}
	}
}

func TestReadTrees(t *testing.T) {
	ts := readTree(t, "two-socket")
	if len(ts.Nodes) != 2 || ts.CPUs != 32 {
		t.Fatalf("two-socket: %d nodes, %d cpus", len(ts.Nodes), ts.CPUs)
	}
	if got := FormatCPUList(ts.Nodes[1].CPUs); got != "8-15,24-31" {
		t.Errorf("node1 cpus %s", got)
	}
	if d := ts.Nodes[0].Distances; !reflect.DeepEqual(d, []int{10, 21}) {
		t.Errorf("node0 distances %v", d)
	}
	if ts.Nodes[0].MemTotal != 128<<30 {
		t.Errorf("node0 MemTotal %d", ts.Nodes[0].MemTotal)
	}
	if want := []int64{2 << 20, 1 << 30}; !reflect.DeepEqual(ts.HugePageSizes, want) {
		t.Errorf("hugepage sizes %v", ts.HugePageSizes)
	}
	if want := (HugePool{Size: 2 << 20, Total: 1024, Free: 1012, Reserved: 8}); ts.HugePages[0] != want {
		t.Errorf("global 2 MiB pool %+v", ts.HugePages[0])
	}
	if want := (HugePool{Size: 1 << 30, Total: 4, Free: 2}); ts.Nodes[0].HugePages[1] != want {
		t.Errorf("node0 1 GiB pool %+v", ts.Nodes[0].HugePages[1])
	}
	if ts.THP != "never" || ts.Memlock == nil || ts.Memlock.Soft != 64<<10 || ts.CapIPCLock {
		t.Errorf("thp %q memlock %+v cap %v", ts.THP, ts.Memlock, ts.CapIPCLock)
	}
	if len(ts.NVMe) != 2 || ts.NVMe[0].Node != 0 || ts.NVMe[1].Node != 1 || len(ts.NVMe[1].Namespaces) != 2 {
		t.Fatalf("nvme %+v", ts.NVMe)
	}
	if ns := ts.NVMe[0].Namespaces[0]; ns.Name != "nvme0n1" || ns.Size != 7501476528*512 {
		t.Errorf("nvme0 namespace %+v", ns)
	}
	nic := ts.NICs[1]
	if nic.Name != "ens801f0" || nic.Node != 1 || nic.SpeedMbps != 25000 || nic.MTU != 9000 || nic.Virtual {
		t.Errorf("nic %+v", nic)
	}
	if lo := ts.NICs[2]; lo.Name != "lo" || !lo.Virtual || lo.Node != -1 {
		t.Errorf("lo %+v", lo)
	}

	cxl := readTree(t, "cxl-memory")
	if n := cxl.Nodes[2]; !n.MemoryOnly() || n.MemTotal != 128<<30 || !reflect.DeepEqual(n.Distances, []int{14, 24, 10}) {
		t.Errorf("cxl node2 %+v", n)
	}
	if cxl.Nodes[0].MemoryOnly() {
		t.Error("node0 memory only")
	}
	want := DAXDevice{Name: "dax0.0", Path: "/dev/dax0.0", Size: 64 << 30, Align: 2 << 20, Node: 2, Driver: "device_dax"}
	if len(cxl.DAX) != 2 || cxl.DAX[0] != want || cxl.DAX[1].Driver != "kmem" {
		t.Errorf("dax %+v", cxl.DAX)
	}
	if cxl.Memlock == nil || cxl.Memlock.Soft != Unlimited {
		t.Errorf("memlock %+v", cxl.Memlock)
	}

	tcp := readTree(t, "nvme-tcp")
	if len(tcp.NVMe) != 3 {
		t.Fatalf("nvme %+v", tcp.NVMe)
	}
	c := tcp.NVMe[0]
	if c.Transport != "tcp" || c.Address != "traddr=10.0.0.5,trsvcid=4420,src_addr=10.0.0.1" || c.Node != -1 ||
		c.SubsysNQN != "nqn.2024-01.dev.zflow:target1" || c.State != "live" {
		t.Errorf("nvme0 %+v", c)
	}
	if ns := tcp.NVMe[2].Namespaces; len(ns) != 2 || ns[0].Name != "nvme1n1" || ns[1].Name != "nvme1n2" || ns[1].Size != 100<<30 {
		t.Errorf("nvme2 namespaces %+v", ns)
	}
	if tcp.THP != "" || len(tcp.HugePages) != 0 || len(tcp.HugePageSizes) != 0 || !tcp.CapIPCLock {
		t.Errorf("thp %q pools %v cap %v", tcp.THP, tcp.HugePages, tcp.CapIPCLock)
	}
}

// TestHost reads the running machine and checks it against sysfs read
// directly, without this package's parsers.
func TestHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sysfs is Linux only")
	}
	m, err := Read(Host())
	if err != nil {
		t.Fatal(err)
	}
	online, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		t.Fatal(err)
	}
	onlineCPUs := expandList(t, string(online))
	if got, want := m.CPUs, len(onlineCPUs); got != want {
		t.Errorf("online CPUs %d, /sys/devices/system/cpu/online says %d", got, want)
	}
	if runtime.NumCPU() > m.CPUs {
		t.Errorf("runtime.NumCPU() = %d > %d online CPUs", runtime.NumCPU(), m.CPUs)
	}
	ents, err := os.ReadDir("/sys/devices/system/node")
	if err != nil {
		t.Skipf("no NUMA in this kernel: %v", err)
	}
	nodes := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "node")); err == nil && strings.HasPrefix(e.Name(), "node") {
			nodes++
		}
	}
	if len(m.Nodes) != nodes {
		t.Errorf("%d nodes, /sys has %d", len(m.Nodes), nodes)
	}
	n0, ok := m.Node(0)
	if !ok {
		t.Fatal("no node 0")
	}
	cpulist, err := os.ReadFile("/sys/devices/system/node/node0/cpulist")
	if err != nil {
		t.Fatal(err)
	}
	isOnline := map[int]bool{}
	for _, c := range onlineCPUs {
		isOnline[c] = true
	}
	want := []int{}
	for _, c := range expandList(t, string(cpulist)) {
		if isOnline[c] {
			want = append(want, c)
		}
	}
	if !reflect.DeepEqual(n0.CPUs, want) {
		t.Errorf("node0 cpus %v, cpulist says %s (online %s)", n0.CPUs, cpulist, online)
	}
	meminfo, err := os.ReadFile("/sys/devices/system/node/node0/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(meminfo)) {
		if f := strings.Fields(line); len(f) == 5 && f[2] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[3], 10, 64)
			if n0.MemTotal != kb*1024 {
				t.Errorf("node0 MemTotal %d, meminfo says %d kB", n0.MemTotal, kb)
			}
		}
	}
	var b bytes.Buffer
	if err := m.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("this machine:\n%s", b.String())
}

// expandList expands a cpu list with a parser of its own.
func expandList(t *testing.T, s string) []int {
	var cpus []int
	if strings.TrimSpace(s) == "" {
		return cpus
	}
	for part := range strings.SplitSeq(strings.TrimSpace(s), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			t.Fatalf("cpu list %q", s)
		}
		b := a
		if isRange {
			b, _ = strconv.Atoi(hi)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// TestMalformed replaces one file of a tree with garbage (or removes it):
// Read returns an error that names the file, and never panics.
func TestMalformed(t *testing.T) {
	for _, tc := range []struct {
		file, content string // content "" removes the file
		want          string
	}{
		{"sys/devices/system/node/node0/cpulist", "0-x\n", `node0/cpulist: cpu list "0-x": bad cpu number "x"`},
		{"sys/devices/system/node/node0/cpulist", "3-1\n", "runs backwards"},
		{"sys/devices/system/node/node0/cpulist", "0-99999999\n", "out of range"},
		{"sys/devices/system/node/node1/cpulist", "", "node1/cpulist: no such file or directory"},
		{"sys/devices/system/cpu/online", "garbage", "cpu/online"},
		{"sys/devices/system/node/node0/meminfo", "Node 0 MemTotal: lots kB\n", `node0/meminfo: meminfo line 1: bad number "lots"`},
		{"sys/devices/system/node/node0/meminfo", "Node 0 MemFree: 1 kB\n", "node0/meminfo: meminfo: no MemTotal"},
		{"sys/devices/system/node/node0/meminfo", "Node 0 MemTotal 12 kB\n", "no ':'"},
		{"sys/devices/system/node/node2/distance", "14 24\n", "node2/distance: 2 distances for 3 nodes"},
		{"sys/devices/system/node/node2/distance", "14 far 10\n", `node2/distance: bad number "far"`},
		{"sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages", "many\n", `resv_hugepages: bad number "many"`},
		{"sys/kernel/mm/transparent_hugepage/enabled", "always madvise never\n", "transparent_hugepage/enabled: no [selected] value"},
		{"proc/sys/kernel/osrelease", "", "osrelease: no such file or directory"},
		{"proc/self/limits", "Max locked memory  lots lots bytes\n", "self/limits: limits: bad value"},
		{"proc/self/status", "CapEff:\tzz\n", "self/status: status: bad CapEff"},
		{"sys/bus/dax/devices/dax0.0/size", "64G\n", `dax0.0/size: bad number "64G"`},
		{"sys/class/net/eth0/speed", "fast\n", `eth0/speed: bad number "fast"`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r := tree(t, "cxl-memory")
			dir := filepath.Dir(r.Sys)
			path := filepath.Join(dir, tc.file)
			var err error
			if tc.content == "" {
				err = os.Remove(path)
			} else {
				err = os.WriteFile(path, []byte(tc.content), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = Read(r)
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.HasPrefix(err.Error(), "topology: read ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestOptionalMissing removes every optional part: no error, empty lists.
func TestOptionalMissing(t *testing.T) {
	r := tree(t, "two-socket")
	for _, p := range []string{"class/nvme", "class/net", "bus/dax", "kernel/mm", "dev"} {
		if err := os.RemoveAll(filepath.Join(r.Sys, p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"self"} {
		if err := os.RemoveAll(filepath.Join(r.Proc, p)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Read(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.NVMe)+len(m.NICs)+len(m.DAX)+len(m.HugePages) != 0 || m.THP != "" || m.Memlock != nil {
		t.Errorf("%+v", m)
	}
	if node, why := m.NodeForPath("."); node != -1 || !strings.Contains(why, "no entry in") && !strings.Contains(why, "not a block device") {
		t.Errorf("NodeForPath without /sys/dev: %d %q", node, why)
	}
	var b bytes.Buffer
	if err := m.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteCheck(&b); err != nil {
		t.Fatal(err)
	}
}

// TestNoNUMA: a kernel without CONFIG_NUMA has no node directory; the
// machine is one node with every online CPU and /proc/meminfo's memory.
func TestNoNUMA(t *testing.T) {
	r := tree(t, "thismachine")
	if err := os.RemoveAll(filepath.Join(r.Sys, "devices/system/node")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Proc, "meminfo"), []byte("MemTotal:        8000 kB\nMemFree:         4000 kB\nMemAvailable:    5000 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Read(r)
	if err != nil {
		t.Fatal(err)
	}
	want := []Node{{ID: 0, CPUs: []int{0, 1}, MemTotal: 8000 << 10, MemFree: 4000 << 10, Distances: []int{10}, HugePages: []HugePool{}}}
	if !reflect.DeepEqual(m.Nodes, want) {
		t.Errorf("nodes %+v", m.Nodes)
	}
}

// TestWriteErrors: a failing writer's error comes back.
func TestWriteErrors(t *testing.T) {
	m := readTree(t, "two-socket")
	for name, write := range map[string]func(w *failWriter) error{
		"text":  func(w *failWriter) error { return m.WriteText(w) },
		"json":  func(w *failWriter) error { return m.WriteJSON(w) },
		"check": func(w *failWriter) error { return m.WriteCheck(w) },
	} {
		if err := write(&failWriter{}); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }
