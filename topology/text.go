package topology

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/zflowdev/zflow/internal/units"
)

// WriteText prints m as tables for people: the machine, NUMA nodes (CPU
// lists in range form, memory, distances, hugepages; memory-only nodes
// marked), machine-wide hugepage pools, DAX devices, NVMe controllers (the
// subsystem NQN for fabrics only) and NICs, after m.Note if there is one.
func (m *Machine) WriteText(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }

	if m.Note != "" {
		p("Note: %s\n\n", m.Note)
	}
	p("Machine\n")
	p("  kernel\t%s\n", m.Kernel)
	p("  online CPUs\t%d\n", m.CPUs)
	p("  NUMA nodes\t%d\n", len(m.Nodes))
	p("  transparent hugepages\t%s\n", orNone(m.THP, "not supported"))
	p("  hugepage sizes\t%s\n", sizeList(m.HugePageSizes))
	p("  memlock limit\t%s\n", memlockText(m.Memlock, m.CapIPCLock))
	p("\nNUMA nodes (distance 10 = local)\n")
	p("  NODE\tCPUS\tMEMORY\tFREE\tDISTANCES\tHUGEPAGES\tNOTE\n")
	for _, n := range m.Nodes {
		note := ""
		if n.MemoryOnly() {
			note = "memory only (CXL-like)"
		}
		total, free := units.Bytes(n.MemTotal), units.Bytes(n.MemFree)
		if m.Note != "" && n.MemTotal == 0 { // not read (NotLinux), not empty
			total, free = "?", "?"
		}
		p("  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, orNone(FormatCPUList(n.CPUs), "-"),
			total, free, intList(n.Distances), nodePools(n.HugePages), note)
	}
	p("\nHugepage pools (machine-wide, in pages)\n")
	if len(m.HugePages) == 0 {
		p("  none\n")
	} else {
		p("  SIZE\tTOTAL\tFREE\tRESERVED\tSURPLUS\n")
		for _, hp := range m.HugePages {
			p("  %s\t%d\t%d\t%d\t%d\n", units.Bytes(hp.Size), hp.Total, hp.Free, hp.Reserved, hp.Surplus)
		}
	}
	p("\nDAX devices\n")
	if len(m.DAX) == 0 {
		p("  none\n")
	} else {
		p("  NAME\tPATH\tSIZE\tALIGN\tNODE\tDRIVER\n")
		for _, d := range m.DAX {
			p("  %s\t%s\t%s\t%s\t%s\t%s\n", d.Name, d.Path, units.Bytes(d.Size), alignText(d.Align), nodeText(d.Node), orNone(d.Driver, "-"))
		}
	}
	p("\nNVMe controllers\n")
	if len(m.NVMe) == 0 {
		p("  none\n")
	} else {
		p("  NAME\tTRANSPORT\tNODE\tSTATE\tADDRESS\tNAMESPACES\tMODEL\tSUBSYSNQN\n")
		for _, c := range m.NVMe {
			var ns []string
			for _, n := range c.Namespaces {
				ns = append(ns, n.Name+" "+units.Bytes(n.Size))
			}
			nqn := c.SubsysNQN // for fabrics: what was connected to
			if c.Transport == "pcie" {
				nqn = ""
			}
			p("  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, orNone(c.Transport, "-"), nodeText(c.Node), orNone(c.State, "-"),
				orNone(c.Address, "-"), orNone(strings.Join(ns, ", "), "-"), orNone(c.Model, "-"), orNone(nqn, "-"))
		}
	}
	p("\nNICs\n")
	if len(m.NICs) == 0 {
		p("  none\n")
	} else {
		p("  NAME\tNODE\tSPEED\tMTU\tMAC\tNOTE\n")
		for _, n := range m.NICs {
			speed := "-"
			if n.SpeedMbps > 0 {
				speed = speedText(n.SpeedMbps)
			}
			note := ""
			if n.Virtual {
				note = "virtual"
			}
			p("  %s\t%s\t%s\t%d\t%s\t%s\n", n.Name, nodeText(n.Node), speed, n.MTU, orNone(n.MAC, "-"), note)
		}
	}
	p("\nRDMA devices\n")
	if len(m.RDMA) == 0 {
		p("  none\n")
	} else {
		p("  NAME\tNODE\tKIND\tNETDEV\tSTATE\tLINK\n")
		for _, d := range m.RDMA {
			p("  %s\t%s\t%s\t%s\t%s\t%s\n", d.Name, nodeText(d.Node), d.Kind, orNone(d.Netdev, "-"), orNone(d.State, "-"), orNone(d.LinkLayer, "-"))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// tabwriter pads empty last cells: trim each line's end.
	var out bytes.Buffer
	for line := range strings.Lines(buf.String()) {
		out.WriteString(strings.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	_, err := w.Write(out.Bytes())
	return err
}

// WriteJSON prints m as indented JSON (snake_case keys; each node also
// carries "memory_only").
func (m *Machine) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("topology: json: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// MarshalJSON adds "memory_only" to the node's fields.
func (n Node) MarshalJSON() ([]byte, error) {
	type plain Node
	return json.Marshal(struct {
		plain
		MemoryOnly bool `json:"memory_only"`
	}{plain(n), n.MemoryOnly()})
}

func alignText(n int64) string {
	if n <= 0 {
		return "-"
	}
	return units.Bytes(n)
}

func speedText(mbps int) string {
	if mbps%1000 == 0 {
		return fmt.Sprintf("%d Gb/s", mbps/1000)
	}
	return fmt.Sprintf("%d Mb/s", mbps)
}

func nodeText(n int) string {
	if n < 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func orNone(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

func intList(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, " ")
}

func sizeList(sizes []int64) string {
	if len(sizes) == 0 {
		return "none"
	}
	s := make([]string, len(sizes))
	for i, n := range sizes {
		s[i] = units.Bytes(n)
	}
	return strings.Join(s, ", ")
}

func nodePools(pools []HugePool) string {
	if len(pools) == 0 {
		return "-"
	}
	s := make([]string, len(pools))
	for i, p := range pools {
		s[i] = fmt.Sprintf("%s: %d (%d free)", units.Bytes(p.Size), p.Total, p.Free)
	}
	return strings.Join(s, ", ")
}

func memlockText(l *Limit, capLock bool) string {
	var s string
	switch {
	case l == nil:
		s = "unknown"
	case l.Soft == Unlimited:
		s = "unlimited"
	default:
		s = units.Bytes(l.Soft)
	}
	if capLock {
		s += " (CAP_IPC_LOCK: not enforced)"
	}
	return s
}

// errWriter keeps the first write error, so a table is printed with
// unchecked Fprintf calls and the error is returned once at the end.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
