package topology

import (
	"fmt"
	"io"
	"strings"

	"github.com/zflowdev/zflow/internal/units"
)

// Status says where an Advice stands.
type Status string

const (
	// StatusOK: in place.
	StatusOK Status = "ok"
	// StatusMissing: not in place; zflow falls back (and says so at run
	// time). Fix says how to get it.
	StatusMissing Status = "missing"
	// StatusHint: worth knowing, nothing is wrong; Fix, if any, is optional.
	StatusHint Status = "hint"
)

// Advice is one finding of Check.
type Advice struct {
	What   string `json:"what"`
	Status Status `json:"status"`
	Fix    string `json:"fix,omitempty"` // shell commands to run as root, one per line; "" when there is none
}

const (
	size2M = 2 << 20
	size1G = 1 << 30
)

// Check says what the machine offers the arenas and placement, and what is
// missing with the command that fixes it: NUMA layout, THP mode, 2 MiB and
// 1 GiB hugepage pools (machine-wide and per node), the memlock limit for
// `lock: true`, DAX devices. The commands name the real /sys and /proc
// paths whatever Root m was read from: they are for the machine's owner.
//
// A machine with a Note (NotLinux) gets that note as its one finding: the
// rest would be Linux commands for a machine that is not Linux.
func (m *Machine) Check() []Advice {
	if m.Note != "" {
		return []Advice{{What: m.Note, Status: StatusMissing}}
	}
	var out []Advice
	add := func(st Status, fix, format string, args ...any) {
		out = append(out, Advice{What: fmt.Sprintf(format, args...), Status: st, Fix: fix})
	}
	var cpuNodes, memNodes []Node
	for _, n := range m.Nodes {
		if n.MemoryOnly() {
			memNodes = append(memNodes, n)
		} else {
			cpuNodes = append(cpuNodes, n)
		}
	}

	// NUMA.
	if len(m.Nodes) == 1 {
		add(StatusHint, "", "one NUMA node: placement has nothing to choose, and binding to another node fails with EINVAL")
	} else {
		add(StatusOK, "", "%d NUMA nodes: %d with CPUs, %d memory only", len(m.Nodes), len(cpuNodes), len(memNodes))
	}
	for _, n := range memNodes {
		add(StatusOK, "", "node %d: memory only (CXL-like), %s; arenas bind to it with node: %d", n.ID, units.Bytes(n.MemTotal), n.ID)
	}

	// Transparent hugepages.
	switch m.THP {
	case "always", "madvise":
		add(StatusOK, "", "transparent hugepages: %s (arenas ask with madvise)", m.THP)
	case "":
		add(StatusMissing, "", "transparent hugepages: not supported by this kernel; arenas without hugetlb pages use 4 KiB pages")
	default:
		add(StatusMissing, "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled",
			"transparent hugepages: %s; arenas without hugetlb pages use 4 KiB pages", m.THP)
	}

	// Hugetlb pools, 2 MiB and 1 GiB. Without them arenas fall back to THP
	// (when the kernel has it on) or to 4 KiB pages.
	fallback := "4 KiB pages"
	if m.THP == "always" || m.THP == "madvise" {
		fallback = "transparent hugepages"
	}
	if len(m.HugePages) == 0 {
		add(StatusMissing, "", "hugetlb pages: not supported by this kernel (no /sys/kernel/mm/hugepages); arenas use %s", fallback)
	} else {
		for _, sz := range []struct {
			size, count int64
			st          Status // when the pool is empty
			instead     string
			comment     string
		}{
			{size2M, 512, StatusMissing, fallback, "1 GiB as 512 × 2 MiB"},
			{size1G, 1, StatusHint, "2 MiB pages", ""},
		} {
			name := units.Bytes(sz.size) + " hugepages"
			p, ok := m.pool(sz.size)
			switch {
			case !ok && sz.size == size1G:
				add(StatusHint, "", "%s: not supported here (CPU flag pdpe1gb, or the kernel); arenas use %s", name, sz.instead)
			case !ok:
				add(StatusMissing, "", "%s: not supported by this kernel; arenas use %s", name, sz.instead)
			case p.Total == 0:
				// The global knob spreads pages over every node with
				// memory, CXL nodes included: with more than one node,
				// reserve per node.
				fix := fmt.Sprintf("echo %d > /sys/kernel/mm/hugepages/hugepages-%dkB/nr_hugepages", sz.count, sz.size>>10)
				if sz.size == size2M {
					fix = fmt.Sprintf("echo %d > /proc/sys/vm/nr_hugepages", sz.count)
				}
				if sz.comment != "" {
					fix += "   # " + sz.comment
				}
				if len(m.Nodes) > 1 {
					fix = nodeFix(cpuNodes, sz.size, sz.count, sz.comment)
				}
				add(sz.st, fix, "%s: the pool is empty; arenas that ask for them use %s", name, sz.instead)
			default:
				add(StatusOK, "", "%s: %d in the pool (%s), %d free, %d reserved by mappings", name, p.Total, units.Bytes(p.Total*p.Size), p.Free, p.Reserved)
				if len(m.Nodes) == 1 {
					continue
				}
				for _, n := range cpuNodes {
					if np, ok := nodePool(n, sz.size); ok && np.Total == 0 {
						add(sz.st, nodeFix([]Node{n}, sz.size, sz.count, sz.comment),
							"node %d: no %s; arenas on node %d use %s", n.ID, name, n.ID, sz.instead)
					}
				}
			}
		}
	}

	// Locking (lock: true).
	const memlockFix = "ulimit -l unlimited   # or LimitMEMLOCK=infinity in a systemd unit, memlock in /etc/security/limits.conf"
	switch {
	case m.CapIPCLock:
		add(StatusOK, "", "memlock: CAP_IPC_LOCK held; lock: true arenas are not limited")
	case m.Memlock == nil:
		add(StatusHint, "", "memlock limit: unknown (no /proc/self/limits)")
	case m.Memlock.Soft == Unlimited:
		add(StatusOK, "", "memlock limit: unlimited")
	default:
		add(StatusHint, memlockFix, "memlock limit: %s; lock: true arenas larger than that fail", units.Bytes(m.Memlock.Soft))
	}

	// DAX.
	if len(m.DAX) == 0 {
		add(StatusHint, "", "no DAX devices: CXL segments are emulated with a file on tmpfs or hugetlbfs")
	}
	for _, d := range m.DAX {
		switch d.Driver {
		case "kmem":
			add(StatusHint, "daxctl reconfigure-device --mode=devdax "+d.Name,
				"%s is online as system RAM (kmem) on node %s: use node %s, or give it back as %s", d.Name, nodeText(d.Node), nodeText(d.Node), d.Path)
		default:
			where := "an unknown node"
			if d.Node >= 0 {
				where = fmt.Sprintf("node %d", d.Node)
			}
			add(StatusOK, "", "%s: %s on %s, align %s, mapped through %s", d.Name, units.Bytes(d.Size), where, alignText(d.Align), d.Path)
		}
	}
	return out
}

// nodeFix returns the commands that reserve count pages of size on each
// node.
func nodeFix(nodes []Node, size, count int64, comment string) string {
	var lines []string
	for _, n := range nodes {
		line := fmt.Sprintf("echo %d > /sys/devices/system/node/node%d/hugepages/hugepages-%dkB/nr_hugepages", count, n.ID, size>>10)
		if comment != "" {
			line += "   # " + comment
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

func (m *Machine) pool(size int64) (HugePool, bool) {
	for _, p := range m.HugePages {
		if p.Size == size {
			return p, true
		}
	}
	return HugePool{}, false
}

func nodePool(n Node, size int64) (HugePool, bool) {
	for _, p := range n.HugePages {
		if p.Size == size {
			return p, true
		}
	}
	return HugePool{}, false
}

// WriteCheck prints the advice of Check, one finding a line with its status,
// and the fix commands indented below it.
func (m *Machine) WriteCheck(w io.Writer) error {
	ew := &errWriter{w: w}
	for _, a := range m.Check() {
		fmt.Fprintf(ew, "%-8s %s\n", a.Status, a.What)
		for i, line := range strings.Split(a.Fix, "\n") {
			if line == "" {
				continue
			}
			label := "fix:"
			if i > 0 {
				label = ""
			}
			fmt.Fprintf(ew, "%-8s %-4s %s\n", "", label, line)
		}
	}
	return ew.err
}
