package topology

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The placement methods answer "which node is X on?" with the node and a
// reason a person can read in a log ("nvme0n1 is on nvme0, node 1"). A node
// of -1 means unknown or no preference: the caller does not bind, and logs
// the reason.

// NodeOfCPU returns the node of an online CPU.
func (m *Machine) NodeOfCPU(cpu int) (int, string) {
	for _, n := range m.Nodes {
		for _, c := range n.CPUs {
			if c == cpu {
				return n.ID, fmt.Sprintf("cpu %d is on node %d", cpu, n.ID)
			}
		}
	}
	return -1, fmt.Sprintf("cpu %d is not online (online: %s)", cpu, FormatCPUList(m.onlineCPUs()))
}

// CPUsOfNode returns the online CPUs of a node; the caller owns the slice.
// A node that does not exist or has no CPUs (memory only) is an error that
// wraps EINVAL, as binding to it would be.
func (m *Machine) CPUsOfNode(node int) ([]int, error) {
	n, ok := m.Node(node)
	if !ok {
		return nil, fmt.Errorf("topology: cpus of node %d: no such node (nodes: %s): %w", node, m.nodeList(), syscall.EINVAL)
	}
	if n.MemoryOnly() {
		return nil, fmt.Errorf("topology: cpus of node %d: the node is memory only: %w", node, syscall.EINVAL)
	}
	return append([]int(nil), n.CPUs...), nil
}

// NodeForNIC returns the node of a network interface's device.
func (m *Machine) NodeForNIC(name string) (int, string) {
	for _, n := range m.NICs {
		if n.Name != name {
			continue
		}
		switch {
		case n.Virtual:
			return -1, fmt.Sprintf("%s is virtual (no device)", name)
		case n.Node < 0:
			return -1, fmt.Sprintf("%s: its device does not report a NUMA node", name)
		}
		return n.Node, fmt.Sprintf("%s is on node %d", name, n.Node)
	}
	return -1, fmt.Sprintf("no network interface %q", name)
}

// NodeForDAX returns the node whose memory a DAX device ("dax0.0" or
// "/dev/dax0.0") maps.
func (m *Machine) NodeForDAX(name string) (int, string) {
	name = strings.TrimPrefix(name, "/dev/")
	for _, d := range m.DAX {
		if d.Name != name {
			continue
		}
		if d.Node < 0 {
			return -1, fmt.Sprintf("%s does not report a NUMA node", name)
		}
		return d.Node, fmt.Sprintf("%s is memory of node %d", name, d.Node)
	}
	return -1, fmt.Sprintf("no DAX device %q", name)
}

// NodeForNVMe returns the node of an NVMe controller ("nvme0") or of the
// controller(s) of a namespace ("nvme0n1"). A fabrics controller has no node.
func (m *Machine) NodeForNVMe(name string) (int, string) {
	name = strings.TrimPrefix(name, "/dev/")
	for _, c := range m.NVMe {
		if c.Name == name {
			return nvmeCtrlNode(c, name)
		}
	}
	var ctrls []NVMeController
	for _, c := range m.NVMe {
		for _, ns := range c.Namespaces {
			if ns.Name == name {
				ctrls = append(ctrls, c)
			}
		}
	}
	switch len(ctrls) {
	case 0:
		return -1, fmt.Sprintf("no NVMe controller or namespace %q", name)
	case 1:
		return nvmeCtrlNode(ctrls[0], name+" is on "+ctrls[0].Name)
	}
	// A multipath namespace reached through several controllers: a node
	// only if they all agree.
	node := ctrls[0].Node
	var names, parts []string
	for _, c := range ctrls {
		names = append(names, c.Name)
		parts = append(parts, fmt.Sprintf("%s (node %s)", c.Name, nodeText(c.Node)))
		if c.Node != node {
			node = -2
		}
	}
	switch {
	case node >= 0:
		return node, fmt.Sprintf("%s is reached through %s, all on node %d", name, strings.Join(names, ", "), node)
	case node == -1 && ctrls[0].Transport != "" && ctrls[0].Transport != "pcie":
		return -1, fmt.Sprintf("%s is reached through %s fabrics controllers %s, which have no NUMA node; place near their NICs",
			name, ctrls[0].Transport, strings.Join(names, ", "))
	}
	return -1, fmt.Sprintf("%s is reached through %s: no single node", name, strings.Join(parts, ", "))
}

func nvmeCtrlNode(c NVMeController, what string) (int, string) {
	switch {
	case c.Node >= 0:
		if what == c.Name {
			return c.Node, fmt.Sprintf("%s is on node %d", c.Name, c.Node)
		}
		return c.Node, fmt.Sprintf("%s, node %d", what, c.Node)
	case c.Transport != "" && c.Transport != "pcie":
		return -1, fmt.Sprintf("%s: %s is a %s fabrics controller (%s) without a NUMA node; place near its NIC", what, c.Name, c.Transport, c.Address)
	}
	return -1, fmt.Sprintf("%s: %s does not report a NUMA node", what, c.Name)
}

// NodeForPath returns the node near a file's storage: the file's block
// device (st_dev, or st_rdev for a device file) is looked up under
// /sys/dev/block/MAJ:MIN and walked up to its NVMe controller or to the
// first parent device with a numa_node; a dm or md device follows its
// slaves. Files on tmpfs, overlay or network
// file systems have no block device: -1 with that reason.
func (m *Machine) NodeForPath(path string) (int, string) {
	char, major, minor, err := statDev(path)
	if err != nil {
		return -1, fmt.Sprintf("%s: %v", path, err)
	}
	node, why := m.nodeForDev(char, major, minor)
	return node, path + ": " + why
}

// nodeForDev is NodeForPath after the stat: char says a character device
// (a device-DAX file), else a block device.
func (m *Machine) nodeForDev(char bool, major, minor uint32) (int, string) {
	kind := "block"
	if char {
		kind = "char"
	}
	id := fmt.Sprintf("%d:%d", major, minor)
	p, err := filepath.EvalSymlinks(m.root.sys("dev", kind, id))
	if err != nil {
		if major == 0 {
			return -1, fmt.Sprintf("device %s is not backed by a block device (tmpfs, proc, overlay, NFS, …)", id)
		}
		return -1, fmt.Sprintf("device %s has no entry in %s", id, m.root.sys("dev", kind))
	}
	if char {
		name := filepath.Base(p)
		for _, d := range m.DAX {
			if d.Name == name {
				return m.NodeForDAX(name)
			}
		}
		return m.walkNode(name, p)
	}
	return m.nodeOfBlock(p, 0)
}

// nodeOfBlock finds the node of the block device whose sysfs directory is
// p: an NVMe namespace is on its controller; a device-mapper or md device
// (dm-0, md0) is on the node all its slaves agree on; anything else is on
// the node of its first parent device that reports one.
func (m *Machine) nodeOfBlock(p string, depth int) (int, string) {
	disk := p
	if _, err := os.Stat(filepath.Join(p, "partition")); err == nil {
		disk = filepath.Dir(p) // nvme0n1p2 → nvme0n1
	}
	name := filepath.Base(disk)
	if _, ok := nvmeNamespaceName(name); ok {
		return m.NodeForNVMe(name)
	}
	slaves, _ := os.ReadDir(filepath.Join(disk, "slaves"))
	if len(slaves) == 0 || depth >= 8 {
		return m.walkNode(name, p)
	}
	node := -2
	var parts []string
	for _, sl := range slaves {
		n, why := -1, sl.Name()+": unreadable"
		if sp, err := filepath.EvalSymlinks(filepath.Join(disk, "slaves", sl.Name())); err == nil {
			n, why = m.nodeOfBlock(sp, depth+1)
		}
		parts = append(parts, why)
		switch {
		case node == -2:
			node = n
		case node != n:
			node = -1
		}
	}
	if len(slaves) == 1 {
		return node, fmt.Sprintf("%s: %s", name, parts[0])
	}
	if node < 0 {
		return -1, fmt.Sprintf("%s spans devices on different or unknown nodes (%s)", name, strings.Join(parts, "; "))
	}
	return node, fmt.Sprintf("%s spans devices all on node %d (%s)", name, node, strings.Join(parts, "; "))
}

// walkNode is the node of the first parent device of the sysfs directory
// p that reports one; name is what the reason calls the device.
func (m *Machine) walkNode(name, p string) (int, string) {
	node, at, ok := deviceNode(m.root, p)
	switch {
	case !ok:
		return -1, fmt.Sprintf("%s is virtual (no parent device reports a NUMA node)", name)
	case node < 0:
		return -1, fmt.Sprintf("%s is on %s, which does not report a NUMA node", name, filepath.Base(at))
	}
	return node, fmt.Sprintf("%s is on %s, node %d", name, filepath.Base(at), node)
}

// Pick resolves a placement hint to a node and the reason. near is one of:
//
//	"" or "auto"   the only node with CPUs, if there is one; else -1
//	"1", "node1"   that node, if it exists
//	"cpu3"         the node of CPU 3
//	"eth0"         a NIC; "nvme0" or "nvme0n1" an NVMe controller or namespace;
//	"dax0.0"       a DAX device (also "/dev/dax0.0", "/dev/nvme0n1")
//	"/data/x"      the node of the device the file is stored on (NodeForPath)
//
// When the hint names something that exists but has no node, on a machine
// with a single node with CPUs, Pick returns that node: there is nothing
// else to choose. A hint that names nothing gives -1 and says so.
func (m *Machine) Pick(near string) (int, string) {
	node, why, exists := m.pick(near)
	if node < 0 && exists {
		if only, ok := m.onlyCPUNode(); ok {
			return only, fmt.Sprintf("%s; node %d is the only node with CPUs", why, only)
		}
	}
	return node, why
}

// pick is Pick without the single-node fallback; exists says whether near
// named something that exists.
func (m *Machine) pick(near string) (node int, why string, exists bool) {
	if near == "" || near == "auto" {
		if only, ok := m.onlyCPUNode(); ok {
			return only, fmt.Sprintf("node %d is the only node with CPUs", only), true
		}
		return -1, "no placement hint: not binding to a node", false
	}
	if id, err := strconv.Atoi(strings.TrimPrefix(near, "node")); err == nil {
		if _, ok := m.Node(id); !ok {
			return -1, fmt.Sprintf("no node %d (nodes: %s)", id, m.nodeList()), false
		}
		return id, fmt.Sprintf("node %d as asked", id), true
	}
	if s, ok := strings.CutPrefix(near, "cpu"); ok {
		if cpu, err := strconv.Atoi(s); err == nil {
			node, why := m.NodeOfCPU(cpu)
			return node, why, false
		}
	}
	name := strings.TrimPrefix(near, "/dev/")
	for _, n := range m.NICs {
		if n.Name == name {
			node, why := m.NodeForNIC(name)
			return node, why, true
		}
	}
	for _, d := range m.DAX {
		if d.Name == name {
			node, why := m.NodeForDAX(name)
			return node, why, true
		}
	}
	for _, c := range m.NVMe {
		match := c.Name == name
		for _, ns := range c.Namespaces {
			match = match || ns.Name == name
		}
		if match {
			node, why := m.NodeForNVMe(name)
			return node, why, true
		}
	}
	if strings.ContainsRune(near, filepath.Separator) || strings.HasPrefix(near, ".") {
		if _, err := os.Stat(near); err != nil {
			return -1, err.Error(), false
		}
		node, why := m.NodeForPath(near)
		return node, why, true
	}
	return -1, fmt.Sprintf("unknown placement hint %q (want auto, a node, cpuN, a device: %s, or a file path)", near, m.deviceList()), false
}

func (m *Machine) onlyCPUNode() (int, bool) {
	id, count := -1, 0
	for _, n := range m.Nodes {
		if !n.MemoryOnly() {
			id, count = n.ID, count+1
		}
	}
	return id, count == 1
}

func (m *Machine) onlineCPUs() []int {
	var cpus []int
	for _, n := range m.Nodes {
		cpus = append(cpus, n.CPUs...)
	}
	return cpus
}

func (m *Machine) nodeList() string {
	ids := make([]int, 0, len(m.Nodes))
	for _, n := range m.Nodes {
		ids = append(ids, n.ID)
	}
	return FormatCPUList(ids)
}

func (m *Machine) deviceList() string {
	var names []string
	for _, n := range m.NICs {
		names = append(names, n.Name)
	}
	for _, c := range m.NVMe {
		names = append(names, c.Name)
	}
	for _, d := range m.DAX {
		names = append(names, d.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// PinCurrentThreadToNode pins the calling OS thread (held with
// runtime.LockOSThread) to the CPUs of node.
func (m *Machine) PinCurrentThreadToNode(node int) error {
	cpus, err := m.CPUsOfNode(node)
	if err != nil {
		return err
	}
	return PinCurrentThread(cpus)
}
