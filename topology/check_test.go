package topology

import (
	"strings"
	"testing"
)

// TestCheck builds machines by hand (Check is pure) and looks for one
// finding each.
func TestCheck(t *testing.T) {
	one := func(mod func(*Machine)) *Machine {
		m := &Machine{
			Nodes:     []Node{{ID: 0, CPUs: []int{0, 1}, Distances: []int{10}}},
			THP:       "madvise",
			HugePages: []HugePool{{Size: size2M, Total: 512, Free: 512}},
			Memlock:   &Limit{Soft: Unlimited, Hard: Unlimited},
		}
		mod(m)
		return m
	}
	two := func(m *Machine) {
		m.Nodes = []Node{
			{ID: 0, CPUs: []int{0}, Distances: []int{10, 21}, HugePages: []HugePool{{Size: size2M, Total: 512}}},
			{ID: 1, CPUs: []int{1}, Distances: []int{21, 10}, HugePages: []HugePool{{Size: size2M}}},
		}
	}
	for _, tc := range []struct {
		name   string
		m      *Machine
		status Status
		what   string
		fix    string
	}{
		{"single node", one(func(*Machine) {}), StatusHint, "one NUMA node", ""},
		{"thp always", one(func(m *Machine) { m.THP = "always" }), StatusOK, "transparent hugepages: always", ""},
		{"thp never", one(func(m *Machine) { m.THP = "never" }), StatusMissing, "transparent hugepages: never",
			"echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"},
		{"thp absent", one(func(m *Machine) { m.THP = "" }), StatusMissing, "transparent hugepages: not supported", ""},
		{"2M ok", one(func(*Machine) {}), StatusOK, "2 MiB hugepages: 512 in the pool (1 GiB), 512 free", ""},
		{"2M empty", one(func(m *Machine) { m.HugePages[0].Total = 0 }), StatusMissing, "2 MiB hugepages: the pool is empty; arenas that ask for them use transparent hugepages",
			"echo 512 > /proc/sys/vm/nr_hugepages   # 1 GiB as 512 × 2 MiB"},
		{"2M empty, THP never", one(func(m *Machine) { m.HugePages[0].Total = 0; m.THP = "never" }), StatusMissing, "arenas that ask for them use 4 KiB pages", "echo 512"},
		{"no hugetlb", one(func(m *Machine) { m.HugePages = nil }), StatusMissing, "hugetlb pages: not supported", ""},
		{"no 1G", one(func(*Machine) {}), StatusHint, "1 GiB hugepages: not supported here", ""},
		{"1G empty", one(func(m *Machine) { m.HugePages = append(m.HugePages, HugePool{Size: size1G}) }), StatusHint, "1 GiB hugepages: the pool is empty",
			"echo 1 > /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"},
		{"per node", one(two), StatusMissing, "node 1: no 2 MiB hugepages; arenas on node 1 use transparent hugepages",
			"echo 512 > /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages   # 1 GiB as 512 × 2 MiB"},
		{"per node empty", one(func(m *Machine) { two(m); m.HugePages[0].Total = 0 }), StatusMissing, "2 MiB hugepages: the pool is empty",
			"echo 512 > /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages   # 1 GiB as 512 × 2 MiB\necho 512 > /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages   # 1 GiB as 512 × 2 MiB"},
		{"memlock low", one(func(m *Machine) { m.Memlock = &Limit{Soft: 8 << 20, Hard: 8 << 20} }), StatusHint, "memlock limit: 8 MiB; lock: true arenas larger than that fail", "ulimit -l unlimited"},
		{"memlock cap", one(func(m *Machine) { m.Memlock = &Limit{Soft: 0}; m.CapIPCLock = true }), StatusOK, "CAP_IPC_LOCK held", ""},
		{"memlock unknown", one(func(m *Machine) { m.Memlock = nil }), StatusHint, "memlock limit: unknown", ""},
		{"no dax", one(func(*Machine) {}), StatusHint, "no DAX devices", ""},
		{"dax", one(func(m *Machine) { m.DAX = []DAXDevice{{Name: "dax0.0", Path: "/dev/dax0.0", Size: 1 << 30, Node: -1}} }), StatusOK,
			"dax0.0: 1 GiB on an unknown node, align -, mapped through /dev/dax0.0", ""},
		{"memory-only node", one(func(m *Machine) {
			m.Nodes = append(m.Nodes, Node{ID: 2, MemTotal: 64 << 30, Distances: []int{20, 10}})
			m.Nodes[0].Distances = []int{10, 20}
		}), StatusOK, "node 2: memory only (CXL-like), 64 GiB", ""},
	} {
		found := false
		for _, a := range tc.m.Check() {
			if strings.Contains(a.What, tc.what) {
				found = true
				if a.Status != tc.status || !strings.Contains(a.Fix, tc.fix) || tc.fix == "" && a.Fix != "" {
					t.Errorf("%s: %+v; want status %s, fix %q", tc.name, a, tc.status, tc.fix)
				}
			}
		}
		if !found {
			t.Errorf("%s: no finding with %q in %+v", tc.name, tc.what, tc.m.Check())
		}
	}
}
