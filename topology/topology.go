package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// Root says where sysfs and procfs are mounted: "/sys" and "/proc" on the
// real machine (Host), a directory under testdata/ in tests.
type Root struct {
	Sys  string `json:"sys"`
	Proc string `json:"proc"`
}

// Host is the running machine's Root.
func Host() Root { return Root{Sys: "/sys", Proc: "/proc"} }

func (r Root) sys(elem ...string) string {
	return filepath.Join(append([]string{r.Sys}, elem...)...)
}

func (r Root) proc(elem ...string) string {
	return filepath.Join(append([]string{r.Proc}, elem...)...)
}

// Machine is what Read found. All sizes are bytes; a node of -1 means the
// kernel does not say. Read fills every slice (empty, never nil), so the JSON
// form has [] rather than null.
type Machine struct {
	Kernel        string           `json:"kernel"`         // /proc/sys/kernel/osrelease
	CPUs          int              `json:"cpus"`           // online CPUs (/sys/devices/system/cpu/online)
	Nodes         []Node           `json:"nodes"`          // NUMA nodes by ascending ID
	THP           string           `json:"thp"`            // transparent hugepages mode: always, madvise, never; "" when the kernel has none
	HugePageSizes []int64          `json:"hugepage_sizes"` // supported hugepage sizes, ascending
	HugePages     []HugePool       `json:"hugepages"`      // machine-wide pools, one per size, ascending
	Memlock       *Limit           `json:"memlock"`        // RLIMIT_MEMLOCK of the reading process; nil when unknown
	CapIPCLock    bool             `json:"cap_ipc_lock"`   // the reading process may lock memory beyond Memlock
	DAX           []DAXDevice      `json:"dax"`
	NVMe          []NVMeController `json:"nvme"`
	NICs          []NIC            `json:"nics"`
	RDMA          []RDMADevice     `json:"rdma"`
	// Note says what Read could not know and why; "" when it read
	// everything. On an OS other than Linux, Read(Host()) fills in only
	// what Go knows (NotLinux) and Note says so.
	Note string `json:"note,omitempty"`

	root Root // where it was read from, for the placement methods
}

// Node is one NUMA node.
type Node struct {
	ID        int        `json:"id"`
	CPUs      []int      `json:"cpus"`      // online CPUs of the node, ascending; empty for a memory-only node
	MemTotal  int64      `json:"mem_total"` // nodeN/meminfo MemTotal
	MemFree   int64      `json:"mem_free"`  // nodeN/meminfo MemFree
	Distances []int      `json:"distances"` // nodeN/distance: Distances[i] is to Machine.Nodes[i]; 10 is local
	HugePages []HugePool `json:"hugepages"` // per size, ascending; Reserved is 0 (the kernel counts it machine-wide only)
}

// MemoryOnly reports whether the node has memory and no CPUs: how a CXL
// Type-3 memory expander (or a DAX device onlined as system RAM) appears.
func (n Node) MemoryOnly() bool { return len(n.CPUs) == 0 }

// HugePool is a hugetlb pool of one page size, counted in pages of Size
// bytes: Total pages in the pool (nr_hugepages), Free ones, Reserved ones
// (promised to mappings but not yet faulted in; machine-wide only) and
// Surplus ones (allocated beyond nr_hugepages by overcommit).
type HugePool struct {
	Size     int64 `json:"size"`
	Total    int64 `json:"total"`
	Free     int64 `json:"free"`
	Reserved int64 `json:"reserved"`
	Surplus  int64 `json:"surplus"`
}

// DAXDevice is a device-DAX instance (/sys/bus/dax/devices/daxX.Y): memory,
// often CXL, mapped as a whole through the character device Path.
type DAXDevice struct {
	Name   string `json:"name"`   // dax0.0
	Path   string `json:"path"`   // /dev/dax0.0
	Size   int64  `json:"size"`   // bytes
	Align  int64  `json:"align"`  // mapping alignment in bytes; 0 when the kernel does not say
	Node   int    `json:"node"`   // target_node (where the memory is), else numa_node; -1 unknown
	Driver string `json:"driver"` // device_dax (a /dev/daxX.Y file), kmem (online as system RAM), or ""
}

// NVMeController is one NVMe controller (/sys/class/nvme/nvmeN), on PCIe or
// over a fabric (tcp, rdma, fc, loop).
type NVMeController struct {
	Name       string          `json:"name"`      // nvme0
	Transport  string          `json:"transport"` // pcie, tcp, rdma, fc, loop
	Address    string          `json:"address"`   // PCI address, or "traddr=…,trsvcid=…" for fabrics
	SubsysNQN  string          `json:"subsys_nqn"`
	Model      string          `json:"model"`
	Serial     string          `json:"serial"`
	State      string          `json:"state"` // live, connecting, …
	Node       int             `json:"node"`  // -1 for fabrics controllers and when the kernel does not say
	Namespaces []NVMeNamespace `json:"namespaces"`
}

// NVMeNamespace is a namespace's block device as the user sees it in /dev.
type NVMeNamespace struct {
	Name string `json:"name"` // nvme0n1 (for a multipath path device nvme0c1n1, the head's name nvme0n1)
	Size int64  `json:"size"` // bytes (the size file counts 512-byte sectors)
}

// NIC is one network interface (/sys/class/net/NAME).
type NIC struct {
	Name      string `json:"name"`
	Node      int    `json:"node"`       // the NUMA node of its device (or the device's nearest parent that says); -1 unknown
	SpeedMbps int    `json:"speed_mbps"` // link speed; 0 when unknown (link down, virtual)
	MTU       int    `json:"mtu"`
	MAC       string `json:"mac"`
	Virtual   bool   `json:"virtual"` // no device link: lo, veth, bridges, ifb
}

// RDMADevice is one verbs device (/sys/class/infiniband/NAME): an RDMA
// NIC, or a software device over a network interface (Soft-RoCE rxe,
// soft iWARP siw).
type RDMADevice struct {
	Name      string `json:"name"`
	Node      int    `json:"node"`                 // the NUMA node of its device, or of its network interface for a software device; -1 unknown
	Kind      string `json:"kind"`                 // rxe, siw or hca
	Netdev    string `json:"netdev,omitempty"`     // the network interface under port 1, when the kernel says
	State     string `json:"state"`                // port 1: ACTIVE, DOWN, INIT…; "" when unknown
	LinkLayer string `json:"link_layer,omitempty"` // port 1: InfiniBand or Ethernet
}

// Read describes the machine under r. Optional parts that are missing (no
// NVMe, no DAX devices, no hugetlb, no THP) are empty, not errors; a
// mandatory file that cannot be read or parsed (cpu/online, a node's
// cpulist, meminfo or distance, osrelease) is an error naming the file.
//
// On an OS other than Linux there is no sysfs: Read(Host()) returns
// NotLinux's machine (runtime.NumCPU CPUs on one node, Note saying the rest
// is unknown) and no error. A Root other than Host (a copied tree) is read
// as on Linux.
func Read(r Root) (*Machine, error) {
	if runtime.GOOS != "linux" && r == Host() {
		return NotLinux(runtime.GOOS, runtime.GOARCH, runtime.NumCPU()), nil
	}
	m := &Machine{root: r}
	var err error
	if m.Kernel, err = readString(r.proc("sys/kernel/osrelease")); err != nil {
		return nil, err
	}
	online, err := readCPUList(r.sys("devices/system/cpu/online"))
	if err != nil {
		return nil, err
	}
	m.CPUs = len(online)
	if m.Nodes, err = readNodes(r, online); err != nil {
		return nil, err
	}
	if m.THP, err = readTHP(r); err != nil {
		return nil, err
	}
	if m.HugePages, err = readHugePools(r.sys("kernel/mm/hugepages"), true); err != nil {
		return nil, err
	}
	m.HugePageSizes = []int64{}
	for _, p := range m.HugePages {
		m.HugePageSizes = append(m.HugePageSizes, p.Size)
	}
	if m.Memlock, m.CapIPCLock, err = readLocking(r); err != nil {
		return nil, err
	}
	if m.DAX, err = readDAX(r); err != nil {
		return nil, err
	}
	if m.NVMe, err = readNVMe(r); err != nil {
		return nil, err
	}
	if m.NICs, err = readNICs(r); err != nil {
		return nil, err
	}
	if m.RDMA, err = readRDMA(r, m.NICs); err != nil {
		return nil, err
	}
	return m, nil
}

// Root returns where m was read from.
func (m *Machine) Root() Root { return m.root }

// Node returns the node with the given ID.
func (m *Machine) Node(id int) (Node, bool) {
	for _, n := range m.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return Node{}, false
}

// readNodes reads /sys/devices/system/node/nodeN. A kernel without NUMA
// support has no such directory: then the machine is one node 0 holding
// every online CPU and the memory of /proc/meminfo.
func readNodes(r Root, online []int) ([]Node, error) {
	dir := r.sys("devices/system/node")
	ents, err := readDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		path := r.proc("meminfo")
		data, err := readFile(path)
		if err != nil {
			return nil, err
		}
		mi, err := parseMeminfo(data)
		if err != nil {
			return nil, fmt.Errorf("topology: read %s: %w", path, err)
		}
		return []Node{{ID: 0, CPUs: online, MemTotal: mi.MemTotal, MemFree: mi.MemFree, Distances: []int{10}, HugePages: []HugePool{}}}, nil
	}
	if err != nil {
		return nil, err
	}
	isOnline := make(map[int]bool, len(online))
	for _, c := range online {
		isOnline[c] = true
	}
	var nodes []Node
	for _, e := range ents {
		s, ok := strings.CutPrefix(e.Name(), "node")
		if !ok {
			continue
		}
		id, err := strconv.Atoi(s)
		if err != nil || id < 0 {
			continue
		}
		n, err := readNode(r, id, isOnline)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("topology: read %s: no nodeN directories", dir)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	for _, n := range nodes {
		if len(n.Distances) != len(nodes) {
			return nil, fmt.Errorf("topology: read %s: %d distances for %d nodes",
				r.sys("devices/system/node", "node"+strconv.Itoa(n.ID), "distance"), len(n.Distances), len(nodes))
		}
	}
	return nodes, nil
}

func readNode(r Root, id int, isOnline map[int]bool) (Node, error) {
	dir := r.sys("devices/system/node", "node"+strconv.Itoa(id))
	n := Node{ID: id, CPUs: []int{}}
	cpus, err := readCPUList(filepath.Join(dir, "cpulist"))
	if err != nil {
		return Node{}, err
	}
	for _, c := range cpus {
		if isOnline[c] {
			n.CPUs = append(n.CPUs, c)
		}
	}
	path := filepath.Join(dir, "meminfo")
	data, err := readFile(path)
	if err != nil {
		return Node{}, err
	}
	mi, err := parseMeminfo(data)
	if err != nil {
		return Node{}, fmt.Errorf("topology: read %s: %w", path, err)
	}
	n.MemTotal, n.MemFree = mi.MemTotal, mi.MemFree
	path = filepath.Join(dir, "distance")
	s, err := readString(path)
	if err != nil {
		return Node{}, err
	}
	if n.Distances, err = parseInts(s); err != nil {
		return Node{}, fmt.Errorf("topology: read %s: %w", path, err)
	}
	if n.HugePages, err = readHugePools(filepath.Join(dir, "hugepages"), false); err != nil {
		return Node{}, err
	}
	return n, nil
}

// readHugePools reads the hugepages-*kB directories under dir; global says
// whether resv_hugepages is there (only machine-wide). A missing dir is a
// kernel without hugetlb: no pools.
func readHugePools(dir string, global bool) ([]HugePool, error) {
	pools := []HugePool{}
	ents, err := readDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return pools, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		size, ok := parseHugepageDir(e.Name())
		if !ok {
			continue
		}
		p := HugePool{Size: size}
		fields := []struct {
			file string
			dst  *int64
		}{
			{"nr_hugepages", &p.Total},
			{"free_hugepages", &p.Free},
			{"surplus_hugepages", &p.Surplus},
		}
		if global {
			fields = append(fields, struct {
				file string
				dst  *int64
			}{"resv_hugepages", &p.Reserved})
		}
		for _, f := range fields {
			if *f.dst, err = readInt(filepath.Join(dir, e.Name(), f.file)); err != nil {
				return nil, err
			}
		}
		pools = append(pools, p)
	}
	sort.Slice(pools, func(i, j int) bool { return pools[i].Size < pools[j].Size })
	return pools, nil
}

func readTHP(r Root) (string, error) {
	path := r.sys("kernel/mm/transparent_hugepage/enabled")
	s, err := readOptional(path)
	if err != nil || s == "" {
		return "", err
	}
	v, err := parseBracketed(s)
	if err != nil {
		return "", fmt.Errorf("topology: read %s: %w", path, err)
	}
	return v, nil
}

// readLocking reads RLIMIT_MEMLOCK from /proc/self/limits and CAP_IPC_LOCK
// from /proc/self/status; both are optional.
func readLocking(r Root) (*Limit, bool, error) {
	var lim *Limit
	path := r.proc("self/limits")
	if s, err := readOptional(path); err != nil {
		return nil, false, err
	} else if s != "" {
		l, err := parseLimit([]byte(s), "Max locked memory")
		if err != nil {
			return nil, false, fmt.Errorf("topology: read %s: %w", path, err)
		}
		lim = &l
	}
	path = r.proc("self/status")
	s, err := readOptional(path)
	if err != nil || s == "" {
		return lim, false, err
	}
	capLock, err := parseCapEff([]byte(s))
	if err != nil {
		return nil, false, fmt.Errorf("topology: read %s: %w", path, err)
	}
	return lim, capLock, nil
}

// readFile is os.ReadFile with the error "topology: read PATH: reason"; it
// still matches fs.ErrNotExist and the errno.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("topology: read %s: %w", path, err)
	}
	return b, nil
}

// readString returns a file's contents without surrounding white space.
func readString(path string) (string, error) {
	b, err := readFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// readOptional is readString where a missing file is "" and no error.
func readOptional(path string) (string, error) {
	s, err := readString(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return s, err
}

func readInt(path string) (int64, error) {
	s, err := readString(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("topology: read %s: bad number %q", path, s)
	}
	return n, nil
}

// readOptionalInt is readInt where a missing file gives def.
func readOptionalInt(path string, def int64) (int64, error) {
	n, err := readInt(path)
	if errors.Is(err, fs.ErrNotExist) {
		return def, nil
	}
	return n, err
}

func readCPUList(path string) ([]int, error) {
	s, err := readString(path)
	if err != nil {
		return nil, err
	}
	cpus, err := ParseCPUList(s)
	if err != nil {
		return nil, fmt.Errorf("topology: read %s: %w", path, err)
	}
	return cpus, nil
}

// readDir is os.ReadDir with the error "topology: read DIR: reason".
func readDir(dir string) ([]fs.DirEntry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("topology: read %s: %w", dir, err)
	}
	return ents, nil
}
