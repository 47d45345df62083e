package buffers

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/zflowdev/zflow/topology"
)

// Report is what an arena asked for and what it got, read back from the
// kernel when Backing is called: /proc/self/smaps for page sizes, huge and
// locked bytes, move_pages(2) for the node of a sample of pages.
type Report struct {
	// Kind, Page and Node are what was asked (Page for KindHugepage only;
	// Node NoNode when unbound was asked).
	Kind Kind
	Page int64
	Node int
	// Unbound is why the mappings are not bound to Node when binding was
	// asked and failed; "" otherwise.
	Unbound string
	// Mapped is the bytes mapped; Huge the bytes observed on hugepages
	// (hugetlb, or transparent hugepages already faulted in); Rss the bytes
	// resident outside hugetlb (base pages and transparent hugepages);
	// Locked the bytes mlocked.
	Mapped, Huge, Rss, Locked int64
	// Fallbacks holds each distinct reason the arena got less than it
	// asked for, in the order met (each was logged once).
	Fallbacks []string
	// Extents has one entry per live mapping, by address.
	Extents []ExtentReport
	// ReadErr is set when /proc/self/smaps could not be read: the observed
	// fields are then zero.
	ReadErr string
}

// ExtentReport describes one mapping.
type ExtentReport struct {
	Addr uintptr
	Size int64
	// Large is set for the own mapping of a large allocation (or one kept
	// in the large cache); otherwise it is an extent size classes carve.
	Large bool
	// Got is the step of the fallback chain the mapping came from; Fallback
	// says why it is not the kind asked ("" when it is).
	Got      Kind
	Fallback string
	// Backing names the memory for mapped_by_backing when its region
	// source says (RegionBacking); "" otherwise.
	Backing string
	// PageSize is the kernel page size of the mapping (smaps
	// KernelPageSize): 2 MiB or 1 GiB for hugetlb, 4 KiB otherwise, even
	// when transparent hugepages back it (those show in Huge).
	PageSize int64
	// Rss is smaps' Rss: bytes resident in base pages and transparent
	// hugepages (hugetlb pages are not in it). Huge is the bytes on
	// hugepages of either kind (AnonHugePages + Shared/Private_Hugetlb);
	// Locked the bytes mlocked.
	Rss, Huge, Locked int64
	// THPEligible is smaps' THPeligible: whether the kernel would back the
	// mapping with transparent hugepages.
	THPEligible bool
	// Node is the node the mapping is bound to, or NoNode.
	Node int
	// NodeObserved is the node holding most of the sampled pages that are
	// present, or NoNode when none is. Sampled counts the pages asked of
	// move_pages, Present those faulted in, OffNode those present on a node
	// other than Node (when bound).
	NodeObserved              int
	Sampled, Present, OffNode int
}

// maxSample bounds the pages per mapping asked of move_pages.
const maxSample = 256

// Backing reads back what every mapping of the arena got. It reads
// /proc/self/smaps once and queries move_pages for up to 256 pages per
// mapping: call it at start-up and when reporting, not per batch.
func (ar *Arena) Backing() Report {
	ar.mu.Lock()
	ms := make([]*mapping, 0, len(ar.maps))
	for _, m := range ar.maps {
		ms = append(ms, m)
	}
	rep := Report{
		Kind:      ar.cfg.Kind,
		Page:      ar.cfg.Page,
		Node:      ar.cfg.Node,
		Unbound:   ar.unbound,
		Fallbacks: slices.Clone(ar.reasons),
	}
	ar.mu.Unlock()
	slices.SortFunc(ms, func(a, b *mapping) int { return cmp.Compare(a.base, b.base) })

	vmas, err := readSmaps()
	if err != nil {
		rep.ReadErr = err.Error()
	}
	for _, m := range ms {
		e := ExtentReport{
			Addr: m.base, Size: int64(m.size), Large: m.large,
			Got: m.got, Fallback: m.fallback,
			PageSize: int64(m.page), Node: m.node, NodeObserved: NoNode,
		}
		if b, ok := m.src.(RegionBacking); ok {
			e.Backing = b.Backing()
		}
		if v, ok := findVMA(vmas, m.base); ok {
			e.PageSize = v.KernelPageSize
			e.Rss, e.Huge, e.Locked = v.Rss, v.hugeBytes(), v.Locked
			e.THPEligible = v.THPEligible
		}
		e.sampleNodes(m)
		rep.Mapped += e.Size
		rep.Huge += e.Huge
		rep.Rss += e.Rss
		rep.Locked += e.Locked
		rep.Extents = append(rep.Extents, e)
	}
	return rep
}

// sampleNodes asks move_pages where up to maxSample evenly spread pages of
// m are; it faults nothing in.
func (e *ExtentReport) sampleNodes(m *mapping) {
	pages := m.size / m.page
	step := max(uintptr(1), (pages+maxSample-1)/maxSample)
	addrs := make([]uintptr, 0, min(pages, maxSample))
	for i := uintptr(0); i < pages; i += step {
		addrs = append(addrs, m.base+i*m.page)
	}
	st, err := topology.PageNodes(addrs)
	if err != nil {
		return
	}
	e.Sampled = len(st)
	count := map[int]int{}
	for _, n := range st {
		if n < 0 {
			continue
		}
		e.Present++
		count[n]++
		if m.node != NoNode && n != m.node {
			e.OffNode++
		}
	}
	best := -1
	for n, c := range count {
		if best < 0 || c > count[best] || (c == count[best] && n < best) {
			best = n
		}
	}
	if best >= 0 {
		e.NodeObserved = best
	}
}

// String renders the report for logs and `zflow run`, one line per mapping.
func (r Report) String() string {
	var b strings.Builder
	asked := r.Kind.String()
	if r.Kind == KindHugepage {
		asked += " " + humanBytes(r.Page)
	}
	node := "unbound"
	if r.Node != NoNode {
		node = fmt.Sprintf("node %d", r.Node)
	}
	fmt.Fprintf(&b, "arena: asked %s, %s; %s mapped, %s on hugepages, %s resident (non-hugetlb), %s locked\n",
		asked, node, humanBytes(r.Mapped), humanBytes(r.Huge), humanBytes(r.Rss), humanBytes(r.Locked))
	if r.Unbound != "" {
		fmt.Fprintf(&b, "  unbound: %s\n", r.Unbound)
	}
	for _, f := range r.Fallbacks {
		fmt.Fprintf(&b, "  fallback: %s\n", f)
	}
	for _, e := range r.Extents {
		what := "extent"
		if e.Large {
			what = "large"
		}
		obs := "no page present"
		if e.NodeObserved != NoNode {
			obs = fmt.Sprintf("node %d (%d of %d sampled pages present)", e.NodeObserved, e.Present, e.Sampled)
		}
		fmt.Fprintf(&b, "  %s %#x %s: got %s, kernel page %s, huge %s, rss %s, locked %s, on %s\n",
			what, e.Addr, humanBytes(e.Size), e.Got, humanBytes(e.PageSize), humanBytes(e.Huge), humanBytes(e.Rss), humanBytes(e.Locked), obs)
	}
	return b.String()
}
