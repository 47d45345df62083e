package engine

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText prints the summary as `zflow run` does at the end of a run: a
// table of per-operator rows, batches, bytes (by reference, copied,
// created), time busy and blocked and memory peak; then every copy with its
// reason, what was passed by reference from elsewhere than the input, and
// the memory report of each pool.
func (s *Summary) WriteText(w io.Writer) {
	status := "ok"
	if s.Err != "" {
		status = "FAILED"
	}
	rows, bytes, copied, ref := s.Totals()
	rate := float64(rows) / s.Elapsed.Seconds()
	fmt.Fprintf(w, "pipeline %q %s in %s: %s rows, %s read, %s rows/s\n",
		s.Pipeline, status, s.Elapsed.Round(time.Millisecond), HumanCount(rows), HumanBytes(bytes), HumanCount(int64(rate)))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operator\ttype\trows in\trows out\tbatches\tbytes in\tbytes out\tby ref\tcopied\tcreated\tbusy\tblocked\tmem peak\t")
	for _, o := range s.Ops {
		batches := o.BatchesOut
		if o.Kind == "sink" {
			batches = o.BatchesIn
		}
		typ := o.Type
		if o.Instances > 1 {
			typ += fmt.Sprintf("×%d", o.Instances)
		}
		peak := "-"
		if o.Memory != nil {
			peak = HumanBytes(o.Memory.Peak)
			if o.Memory.Own {
				peak += " (" + o.Memory.Pool + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			o.ID, typ, HumanCount(o.RowsIn), HumanCount(o.RowsOut), batches,
			HumanBytes(o.BytesIn), HumanBytes(o.BytesOut),
			HumanBytes(o.BytesRef), HumanBytes(o.BytesCopied), HumanBytes(o.BytesNew),
			o.Busy.Round(time.Millisecond), o.Blocked.Round(time.Millisecond), peak)
	}
	tw.Flush()
	var files []string
	many := false
	for _, o := range s.Ops {
		if o.Files > 0 {
			files = append(files, fmt.Sprintf("%s %d", o.ID, o.Files))
			many = many || o.Files > 1
		}
	}
	if many { // one file per operator is the usual case, not worth a line
		fmt.Fprintf(w, "files: %s\n", strings.Join(files, ", "))
	}
	for _, o := range s.Ops {
		if o.IO != "" {
			fmt.Fprintf(w, "io: %s %s\n", o.ID, o.IO)
		}
	}
	for _, o := range s.Ops {
		if o.BlocksSkipped > 0 || o.BlocksRead > 0 {
			fmt.Fprintf(w, "pushdown: %s skipped %d of %d blocks\n", o.ID, o.BlocksSkipped, o.BlocksRead+o.BlocksSkipped)
		}
	}
	for _, o := range s.Ops {
		if sp := o.Spill; sp != nil {
			fmt.Fprintf(w, "spill: %s spilled %s in %d files, %s\n", o.ID, HumanBytes(sp.Bytes), sp.Files, sp.Time.Round(time.Millisecond))
		}
	}
	fmt.Fprintf(w, "by reference: %s; copied: %s", HumanBytes(ref), HumanBytes(copied))
	var copies []string
	for _, o := range s.Ops {
		for reason, n := range o.Copies {
			copies = append(copies, fmt.Sprintf("%s %s (%s)", o.ID, HumanBytes(n), reason))
		}
	}
	sort.Strings(copies)
	if len(copies) > 0 {
		fmt.Fprintf(w, " — %s", strings.Join(copies, ", "))
	}
	fmt.Fprintln(w)
	var refs []string // what operators passed on from elsewhere than their input
	for _, o := range s.Ops {
		for reason, n := range o.References {
			if reason != RefInput {
				refs = append(refs, fmt.Sprintf("%s %s (%s)", o.ID, HumanBytes(n), reason))
			}
		}
	}
	sort.Strings(refs)
	if len(refs) > 0 {
		fmt.Fprintf(w, "by reference, not from the input: %s\n", strings.Join(refs, ", "))
	}
	writeMemoryText(w, "memory", s.Memory)
	for i := range s.Pools {
		writeMemoryText(w, "memory of "+strings.Join(s.Pools[i].Operators, ", "), &s.Pools[i])
	}
}

// writeMemory prints where the batches lived: the arena asked for and what
// the kernel gave, as read back at the end of the run.
func writeMemoryText(w io.Writer, label string, m *MemoryReport) {
	switch {
	case m == nil || m.Arena == "heap" || m.Arena == "caller":
		what := "Go heap"
		if m != nil && m.Arena == "caller" {
			what = "the caller's allocator"
		}
		fmt.Fprintf(w, "%s: %s", label, what)
		if m != nil {
			fmt.Fprintf(w, ", peak %s", HumanBytes(m.Peak))
			if m.Budget > 0 {
				fmt.Fprintf(w, ", budget %s", HumanBytes(m.Budget))
			}
		}
		fmt.Fprintln(w)
		return
	}
	asked := m.Arena
	if m.Arena == "hugepage" {
		asked += " " + HumanBytes(m.Page)
	}
	if m.Node >= 0 {
		asked += fmt.Sprintf(" on node %d", m.Node)
	}
	if m.Path != "" {
		asked += " at " + m.Path
	}
	var got []string
	for _, k := range []string{"hugetlb", "thp", "plain"} {
		if n := m.ByBacking[k]; n > 0 {
			got = append(got, fmt.Sprintf("%s %s", HumanBytes(n), k))
		}
	}
	if len(got) == 0 {
		got = append(got, "nothing mapped")
	}
	seen := "no pages present"
	if m.NodeSeen >= 0 {
		seen = fmt.Sprintf("pages on node %d", m.NodeSeen)
	}
	fmt.Fprintf(w, "%s: arena %s → got %s (%s on hugepages, %s), peak %s",
		label, asked, strings.Join(got, " + "), HumanBytes(m.Huge), seen, HumanBytes(m.Peak))
	if m.Budget > 0 {
		fmt.Fprintf(w, ", budget %s", HumanBytes(m.Budget))
	}
	if m.SoftBudget > 0 {
		fmt.Fprintf(w, ", soft budget %s (%d waits)", HumanBytes(m.SoftBudget), m.SoftWaits)
	}
	fmt.Fprintln(w)
	for _, f := range m.Fallbacks {
		fmt.Fprintf(w, "  fallback: %s\n", f)
	}
}

// HumanCount renders a count for people: 950, 12.5k, 3.20M, 1.05G.
func HumanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fG", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
