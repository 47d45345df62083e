//go:build linux

package buffers

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/zflowdev/zflow/topology"
)

// touch writes one byte per 4 KiB page.
func touch(b []byte) {
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
}

// TestHugepageReal reserves 2 MiB hugepages (as root), maps a hugepage
// arena, and checks from the kernel that it got them: smaps shows the
// extent with a 2 MiB KernelPageSize and Private_Hugetlb, and the pool's
// free count dropped.
func TestHugepageReal(t *testing.T) {
	const extent = 16 << 20
	reserveHugepages(t, 16)
	freeBefore := readIntFile(t, freeHugepages)
	a, sink := newTest(t, ArenaConfig{Kind: KindHugepage, Node: NoNode, ExtentSize: extent, Prefault: true})
	b := a.Allocate(1 << 20)
	touch(b)
	rep := a.Backing()
	t.Log(rep.String())
	if len(rep.Fallbacks) != 0 {
		t.Fatalf("fallbacks with %d free hugepages: %q", freeBefore, rep.Fallbacks)
	}
	if strings.Contains(sink.String(), "fallback") {
		t.Errorf("fallback logged: %s", sink.String())
	}
	e := rep.Extents[0]
	if e.Got != KindHugepage || e.PageSize != Page2MiB || e.Huge != extent {
		t.Errorf("extent: got %v, kernel page %d, %d bytes on hugepages; want hugepage, %d, %d", e.Got, e.PageSize, e.Huge, Page2MiB, extent)
	}
	if free := readIntFile(t, freeHugepages); freeBefore-free < extent/Page2MiB {
		t.Errorf("free 2 MiB hugepages went from %d to %d: want %d fewer", freeBefore, free, extent/Page2MiB)
	}
	if st := a.Stats(); len(st.Backing) != 1 || st.Backing[0].Kind != KindHugepage {
		t.Errorf("stats by backing: %+v", st.Backing)
	}
	// A large allocation maps hugepages of its own.
	l := a.Allocate(6 << 20)
	touch(l)
	rep = a.Backing()
	var large *ExtentReport
	for i := range rep.Extents {
		if rep.Extents[i].Large {
			large = &rep.Extents[i]
		}
	}
	if large == nil || large.Got != KindHugepage || large.Huge != 6<<20 {
		t.Errorf("large allocation: %+v, want 6 MiB of hugetlb", large)
	}
	a.Free(l)
	a.Free(b)
}

// TestHugepageFallsBackToTHP: with no hugepage free for the extent,
// MAP_HUGETLB fails with ENOMEM, the arena falls back to THP, logs why once
// and reports it. Rather than emptying the pool (which other processes may
// be using), it asks for more pages than are free.
func TestHugepageFallsBackToTHP(t *testing.T) {
	if _, err := os.Stat(pool2M); err != nil {
		t.Skipf("no 2 MiB hugepage pool: %v", err)
	}
	free := readIntFile(t, freeHugepages)
	extent := (free + 2) * Page2MiB
	t.Logf("%d 2 MiB hugepages free; asking for an extent of %s", free, humanBytes(extent))
	a, sink := newTest(t, ArenaConfig{Kind: KindHugepage, Node: NoNode, ExtentSize: extent})
	// A second extent and a large block fail the same way: logged once.
	b := a.Allocate(MaxClassSize)
	l := a.Allocate(int(extent) + 1)
	rep := a.Backing()
	t.Log(rep.String())
	want := "THP"
	if thpMode() == "never" {
		want = "plain pages"
	}
	if len(rep.Fallbacks) == 0 || !strings.Contains(rep.Fallbacks[0], "MAP_HUGETLB 2MiB: ENOMEM") ||
		!strings.Contains(rep.Fallbacks[0], "nr_hugepages") || !strings.HasSuffix(rep.Fallbacks[0], "using "+want) {
		t.Errorf("fallbacks %q: want a MAP_HUGETLB ENOMEM reason saying how to reserve and that it uses %s", rep.Fallbacks, want)
	}
	if n := strings.Count(sink.String(), "MAP_HUGETLB"); n != 1 {
		t.Errorf("MAP_HUGETLB fallback logged %d times, want once:\n%s", n, sink.String())
	}
	for _, e := range rep.Extents {
		if e.Got == KindHugepage || !strings.Contains(e.Fallback, "MAP_HUGETLB") {
			t.Errorf("extent %#x: got %v, fallback %q", e.Addr, e.Got, e.Fallback)
		}
	}
	a.Free(b)
	a.Free(l)
}

// TestHugepageEmptyPool is the step with the pool at 0 (as root): the
// fallback reason must say 0 are free.
func TestHugepageEmptyPool(t *testing.T) {
	needRoot(t, "empty the hugepage pool through "+nrHugepages)
	old := readIntFile(t, nrHugepages)
	if old != 0 && readIntFile(t, freeHugepages) != old {
		t.Skipf("%d of %d hugepages are in use by someone: not emptying the pool", old-readIntFile(t, freeHugepages), old)
	}
	writeIntFile(t, nrHugepages, 0)
	t.Cleanup(func() { writeIntFile(t, nrHugepages, old) })
	a, _ := newTest(t, ArenaConfig{Kind: KindHugepage, Node: NoNode, ExtentSize: 4 << 20})
	rep := a.Backing()
	if len(rep.Fallbacks) == 0 || !strings.Contains(rep.Fallbacks[0], "0 of 0 2 MiB hugepages free") {
		t.Errorf("fallbacks %q: want the reason to say 0 of 0 free", rep.Fallbacks)
	}
}

// TestHugepage1GiBFallback: 1 GiB pages, usually not reserved (and on
// many machines without a pool at all), fall back with a reason.
func TestHugepage1GiBFallback(t *testing.T) {
	pool := "/sys/kernel/mm/hugepages/hugepages-1048576kB"
	if n, err := readInt64(pool + "/free_hugepages"); err == nil && n > 0 {
		t.Skipf("%d 1 GiB hugepages free: the fallback would not happen", n)
	}
	a, _ := newTest(t, ArenaConfig{Kind: KindHugepage, Page: Page1GiB, Node: NoNode})
	rep := a.Backing()
	t.Log(rep.String())
	if len(rep.Fallbacks) == 0 || !strings.HasPrefix(rep.Fallbacks[0], "MAP_HUGETLB 1GiB: ") {
		t.Errorf("fallbacks %q: want a MAP_HUGETLB 1GiB reason", rep.Fallbacks)
	}
	// Falling back, the extent is the default size, not a whole GiB of
	// THP prefaulted; large allocations round to the THP size.
	if e := rep.Extents[0]; e.Got == KindHugepage || e.Size != DefaultExtentSize {
		t.Errorf("extent: got %v, %d bytes; want a fallback of %d", e.Got, e.Size, DefaultExtentSize)
	}
	b := a.Allocate(5 << 20)
	if in := a.InUse(); in != 6<<20 {
		t.Errorf("5 MiB after the 1 GiB fallback charged as %d, want 6 MiB (THP-rounded)", in)
	}
	a.Free(b)
}

// TestTHPObserved: a THP arena, prefaulted, shows AnonHugePages in smaps.
func TestTHPObserved(t *testing.T) {
	switch mode := thpMode(); mode {
	case "never":
		t.Skipf("transparent hugepages are disabled (%s is [never])", thpEnabledPath)
	case "":
		t.Skipf("this kernel has no transparent hugepages (%s unreadable)", thpEnabledPath)
	}
	const extent = 8 << 20
	a, _ := newTest(t, ArenaConfig{Kind: KindTHP, Node: NoNode, ExtentSize: extent, Prefault: true})
	rep := a.Backing()
	t.Log(rep.String())
	e := rep.Extents[0]
	if e.Got != KindTHP || e.Addr%thpPMD != 0 || !e.THPEligible {
		t.Errorf("extent: got %v at %#x, THPeligible %v; want thp, 2 MiB aligned, eligible", e.Got, e.Addr, e.THPEligible)
	}
	if e.Huge == 0 {
		t.Errorf("no AnonHugePages after prefaulting %s advised MADV_HUGEPAGE (THP %s): %+v", humanBytes(extent), thpMode(), e)
	}
	if len(rep.Fallbacks) != 0 {
		t.Errorf("fallbacks: %q", rep.Fallbacks)
	}
}

// TestTHPNeverFallsBack: with THP reported as "never" (a fake sysfs file),
// a THP arena maps plain pages and says why.
func TestTHPNeverFallsBack(t *testing.T) {
	fake := t.TempDir() + "/enabled"
	if err := os.WriteFile(fake, []byte("always madvise [never]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := thpEnabledPath
	thpEnabledPath = fake
	t.Cleanup(func() { thpEnabledPath = old })
	a, _ := newTest(t, ArenaConfig{Kind: KindTHP, Node: NoNode, ExtentSize: 4 << 20})
	rep := a.Backing()
	if len(rep.Fallbacks) != 1 || !strings.Contains(rep.Fallbacks[0], "[never]; using plain pages") {
		t.Errorf("fallbacks %q", rep.Fallbacks)
	}
	if rep.Extents[0].Got != KindPlain {
		t.Errorf("extent got %v, want plain", rep.Extents[0].Got)
	}
}

// TestPlain: a plain arena has base pages only, even when THP is
// "always", and is not THP-eligible.
func TestPlain(t *testing.T) {
	a, _ := newTest(t, ArenaConfig{Kind: KindPlain, Node: NoNode, ExtentSize: 8 << 20, Prefault: true})
	rep := a.Backing()
	t.Log(rep.String())
	e := rep.Extents[0]
	if e.Got != KindPlain || e.Huge != 0 || e.PageSize != int64(os.Getpagesize()) || e.THPEligible {
		t.Errorf("extent: %+v; want plain, no hugepages, %d-byte pages, not THP-eligible", e, os.Getpagesize())
	}
	if e.Rss != e.Size {
		t.Errorf("prefaulted extent: %d of %d bytes resident", e.Rss, e.Size)
	}
	if len(rep.Fallbacks) != 0 {
		t.Errorf("fallbacks: %q", rep.Fallbacks)
	}
}

// TestLock: a locked arena shows its bytes under Locked.
func TestLock(t *testing.T) {
	a, _ := newTest(t, ArenaConfig{Kind: KindTHP, Node: NoNode, ExtentSize: 4 << 20, Lock: true})
	rep := a.Backing()
	if len(rep.Fallbacks) > 0 {
		t.Skipf("mlock fell back: %q", rep.Fallbacks)
	}
	if e := rep.Extents[0]; e.Locked != e.Size {
		t.Errorf("locked extent: %d of %d bytes locked", e.Locked, e.Size)
	}
}

// TestMbindNode0: an arena bound to node 0 has its pages on node 0.
func TestMbindNode0(t *testing.T) {
	a, _ := newTest(t, ArenaConfig{Kind: KindTHP, Bind: true, Node: 0, ExtentSize: 8 << 20, Prefault: true})
	b := a.Allocate(1 << 20)
	touch(b)
	rep := a.Backing()
	t.Log(rep.String())
	if rep.Unbound != "" {
		t.Fatalf("unbound: %s", rep.Unbound)
	}
	for _, e := range rep.Extents {
		if e.Node != 0 || e.NodeObserved != 0 || e.OffNode != 0 || e.Present == 0 {
			t.Errorf("extent %#x: bound to %d, observed %d, %d of %d sampled pages present, %d off node",
				e.Addr, e.Node, e.NodeObserved, e.Present, e.Sampled, e.OffNode)
		}
	}
	a.Free(b)
}

// TestMbindMissingNode: binding to a node the machine lacks degrades to
// unbound with a logged reason, and the report says so.
func TestMbindMissingNode(t *testing.T) {
	n, err := topology.MaxNodes()
	if err != nil {
		t.Fatalf("MaxNodes: %v", err)
	}
	if n > 1 {
		t.Logf("%d possible NUMA nodes: using node %d, which cannot exist", n, n)
	}
	a, sink := newTest(t, ArenaConfig{Kind: KindPlain, Bind: true, Node: n, ExtentSize: 4 << 20})
	b := a.Allocate(MaxClassSize) // a second extent: not retried, not logged again
	rep := a.Backing()
	want := fmt.Sprintf("mbind to NUMA node %d", n)
	if !strings.Contains(rep.Unbound, want) || !strings.Contains(rep.Unbound, "continuing unbound") {
		t.Errorf("Unbound = %q, want %q … continuing unbound", rep.Unbound, want)
	}
	if c := strings.Count(sink.String(), "step=mbind"); c != 1 {
		t.Errorf("mbind failure logged %d times, want once:\n%s", c, sink.String())
	}
	for _, e := range rep.Extents {
		if e.Node != NoNode {
			t.Errorf("extent %#x reports node %d, want unbound", e.Addr, e.Node)
		}
	}
	if !strings.Contains(rep.String(), "unbound: ") {
		t.Errorf("report text does not say unbound:\n%s", rep)
	}
	a.Free(b)
}

// TestGuardPages: extents do not merge with neighbours (so smaps reads
// each on its own), and the guard pages around them fault.
func TestGuardPages(t *testing.T) {
	m, err := mmapAligned(4<<20, thpPMD, uintptr(os.Getpagesize()))
	if err != nil {
		t.Fatal(err)
	}
	defer m.unmap()
	if m.base%thpPMD != 0 || m.rawBase != m.base-uintptr(os.Getpagesize()) || m.rawSize != m.size+2*uintptr(os.Getpagesize()) {
		t.Errorf("mapping %+v: want 2 MiB aligned between two guard pages", m)
	}
	vmas, err := readSmaps()
	if err != nil {
		t.Fatal(err)
	}
	v, ok := findVMA(vmas, m.base)
	if !ok || v.End != m.base+m.size {
		t.Errorf("smaps mapping at %#x: %+v, want exactly the region", m.base, v)
	}
	g, ok := findVMA(vmas, m.rawBase)
	if !ok || strings.Contains(g.Flags, "rd") {
		t.Errorf("guard page: %+v, want a PROT_NONE mapping", g)
	}
}

func TestErrnoName(t *testing.T) {
	if got := errnoName(fmt.Errorf("x: %w", errors.New("plain"))); got != "error" {
		t.Errorf("errnoName(plain) = %q", got)
	}
}

// TestQuietFallback: the same fallback is a warning when the arena was
// asked for and an info record with QuietFallback (the default arena);
// the report has it either way.
func TestQuietFallback(t *testing.T) {
	if _, err := os.Stat(pool2M); err != nil {
		t.Skipf("no 2 MiB hugepage pool: %v", err)
	}
	extent := (readIntFile(t, freeHugepages) + 2) * Page2MiB // more than are free
	for _, c := range []struct {
		quiet bool
		level string
	}{{false, "level=WARN"}, {true, "level=INFO"}} {
		a, sink := newTest(t, ArenaConfig{Kind: KindHugepage, Node: NoNode, ExtentSize: extent, QuietFallback: c.quiet})
		a.Free(a.Allocate(64))
		rep := a.Backing()
		logged := sink.String()
		if len(rep.Fallbacks) == 0 || !strings.Contains(logged, c.level+` msg="buffers: arena fallback"`) || strings.Count(logged, "arena fallback") != 1 {
			t.Errorf("quiet %v: fallbacks %q, log:\n%s\nwant one record at %s", c.quiet, rep.Fallbacks, logged, c.level)
		}
	}
}

func TestExtents(t *testing.T) {
	a, _ := newTest(t, ArenaConfig{Kind: KindPlain, ExtentSize: 4 << 20})
	small := a.Allocate(1000)
	large := a.Allocate(8 << 20) // a mapping of its own, not an extent
	ext := a.Arena().Extents()
	if len(ext) == 0 {
		t.Fatal("no extent after a small allocation")
	}
	within := func(b []byte) bool {
		p := uintptr(unsafe.Pointer(&b[0]))
		for _, e := range ext {
			base := uintptr(unsafe.Pointer(&e[0]))
			if p >= base && p+uintptr(len(b)) <= base+uintptr(len(e)) {
				return true
			}
		}
		return false
	}
	if !within(small) {
		t.Error("a class block is not inside any extent")
	}
	if within(large) {
		t.Error("a large allocation's mapping is listed as an extent")
	}
	a.Free(small)
	a.Free(large)
}
