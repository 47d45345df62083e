//go:build linux

package numa

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/topology"
)

// The guest's layout (see doc.go and interop/guest/run.sh).
var (
	wantCPUs   = map[int][]int{0: {0, 1}, 1: {2, 3}, 2: {}}
	memoryOnly = 2
)

const (
	hugePage  = 2 << 20
	basePage  = 4 << 10
	extentLen = 8 << 20 // a small first extent: 4 hugepages of a node's pool
)

// guestMachine skips the test outside the NUMA guest, else reads the
// machine.
func guestMachine(t *testing.T) *topology.Machine {
	t.Helper()
	if g := os.Getenv("ZFLOW_GUEST"); g != "numa" {
		t.Skipf("ZFLOW_GUEST=%q, not \"numa\": this check needs the 3-node QEMU guest (two CPU nodes and a memory-only one); run `make interop`", g)
	}
	m, err := topology.Read(topology.Host())
	if err != nil {
		t.Fatalf("topology.Read: %v", err)
	}
	return m
}

// TestTopologyJSON is check 1 through the CLI: `zflow topology --json`
// lists three nodes, and only node 2 is memory only.
func TestTopologyJSON(t *testing.T) {
	guestMachine(t)
	bin := os.Getenv("ZFLOW_BIN")
	if bin == "" {
		bin = "zflow"
	}
	out, err := exec.Command(bin, "topology", "--json").Output()
	if err != nil {
		t.Fatalf("%s topology --json: %v", bin, err)
	}
	var doc struct {
		Nodes []struct {
			ID         int   `json:"id"`
			CPUs       []int `json:"cpus"`
			Distances  []int `json:"distances"`
			MemTotal   int64 `json:"mem_total"`
			MemoryOnly bool  `json:"memory_only"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("zflow topology --json: %v\n%s", err, out)
	}
	if len(doc.Nodes) != 3 {
		t.Fatalf("zflow topology --json: %d nodes, want 3\n%s", len(doc.Nodes), out)
	}
	for _, n := range doc.Nodes {
		t.Logf("zflow topology --json: node %d cpus=%v memory_only=%v mem_total=%d MiB distances=%v",
			n.ID, n.CPUs, n.MemoryOnly, n.MemTotal>>20, n.Distances)
		want, ok := wantCPUs[n.ID]
		if !ok {
			t.Errorf("node %d: not in the guest's layout", n.ID)
			continue
		}
		if !slices.Equal(n.CPUs, want) {
			t.Errorf("node %d: cpus %v, want %v", n.ID, n.CPUs, want)
		}
		if n.MemoryOnly != (n.ID == memoryOnly) {
			t.Errorf("node %d: memory_only %v, want %v", n.ID, n.MemoryOnly, n.ID == memoryOnly)
		}
		if n.MemTotal <= 0 {
			t.Errorf("node %d: mem_total %d, want memory on every node", n.ID, n.MemTotal)
		}
	}
}

// TestNodes is check 1 through the package: the same layout from
// topology.Read, and the memory-only node is the farthest one.
func TestNodes(t *testing.T) {
	m := guestMachine(t)
	if len(m.Nodes) != 3 {
		t.Fatalf("topology.Read: %d nodes, want 3", len(m.Nodes))
	}
	for _, n := range m.Nodes {
		t.Logf("topology.Read: node %d cpus=%v MemoryOnly()=%v distances=%v", n.ID, n.CPUs, n.MemoryOnly(), n.Distances)
		if !slices.Equal(n.CPUs, wantCPUs[n.ID]) || n.MemoryOnly() != (n.ID == memoryOnly) {
			t.Errorf("node %d: cpus %v memory only %v, want cpus %v", n.ID, n.CPUs, n.MemoryOnly(), wantCPUs[n.ID])
		}
	}
	d := func(a, b int) int { return m.Nodes[a].Distances[b] }
	if !(d(0, 2) > d(0, 1) && d(1, 2) > d(0, 1)) {
		t.Errorf("distances 0-1=%d 0-2=%d 1-2=%d: want the memory-only node farther than the CPU nodes are from each other",
			d(0, 1), d(0, 2), d(1, 2))
	}
}

// TestArenaPages is check 2: a plain arena bound to node N has every page
// of what it hands out on node N, for a CPU node (0, 1) and the memory-only
// node 2, checked with move_pages and /proc/self/numa_maps.
func TestArenaPages(t *testing.T) {
	guestMachine(t)
	for _, node := range []int{0, 1, 2} {
		t.Run(fmt.Sprintf("node=%d", node), func(t *testing.T) {
			a, err := buffers.New(buffers.ArenaConfig{
				Kind: buffers.KindPlain, Bind: true, Node: node, Prefault: true,
				ExtentSize: extentLen, LargeCache: -1,
			})
			if err != nil {
				t.Fatalf("buffers.New(plain, node %d): %v", node, err)
			}
			defer closeArena(t, a)
			if r := a.Backing(); r.Unbound != "" {
				t.Fatalf("arena not bound to node %d: %s", node, r.Unbound)
			}
			// A small block and a mid-sized one carved from the extent, and a
			// large one (above MaxClassSize) with a mapping of its own.
			for _, size := range []int{64 << 10, 1 << 20, buffers.MaxClassSize + 2<<20} {
				b := a.Allocate(size)
				addrs := pages(b, basePage)
				before := pageNodes(t, addrs)
				touch(b, basePage)
				after := pageNodes(t, addrs)
				t.Logf("node %d arena, %d KiB block: move_pages: %d pages, present before touch %d, after touch on nodes %v",
					node, size>>10, len(addrs), present(before), histogram(after))
				requireAll(t, after, node, fmt.Sprintf("%d KiB block", size>>10))
				line, counts := numaMaps(t, addr(b))
				t.Logf("node %d arena, %d KiB block: numa_maps: %s", node, size>>10, line)
				requireNumaMaps(t, line, counts, node, "bind:"+strconv.Itoa(node))
				a.Free(b)
			}
		})
	}
}

// TestHugepagePools is check 3: a hugepage arena bound to node N takes its
// pages from node N's pool, no other node's, and gives them back on Close.
// /init reserved the pools (nr_hugepages per node).
func TestHugepagePools(t *testing.T) {
	m := guestMachine(t)
	for _, node := range []int{1, memoryOnly} {
		t.Run(fmt.Sprintf("node=%d", node), func(t *testing.T) {
			before := freeHugepages(t, m)
			if before[node] < extentLen/hugePage {
				t.Fatalf("node %d has %d free 2 MiB hugepages, need %d: did /init reserve them?", node, before[node], extentLen/hugePage)
			}
			a, err := buffers.New(buffers.ArenaConfig{
				Kind: buffers.KindHugepage, Page: buffers.Page2MiB, Bind: true, Node: node, Prefault: true,
				ExtentSize: extentLen, LargeCache: -1,
			})
			if err != nil {
				t.Fatalf("buffers.New(hugepage, node %d): %v", node, err)
			}
			closed := false
			defer func() {
				if !closed {
					closeArena(t, a)
				}
			}()
			r := a.Backing()
			if r.Unbound != "" || len(r.Fallbacks) > 0 {
				t.Fatalf("hugepage arena on node %d: unbound %q, fallbacks %q", node, r.Unbound, r.Fallbacks)
			}
			var addrs []uintptr
			for _, e := range r.Extents {
				if e.Got != buffers.KindHugepage || e.PageSize != hugePage {
					t.Fatalf("extent %#x: got %v with %d-byte pages, want hugetlb 2 MiB", e.Addr, e.Got, e.PageSize)
				}
				for p := e.Addr; p < e.Addr+uintptr(e.Size); p += hugePage {
					addrs = append(addrs, p)
				}
			}
			b := a.Allocate(1 << 20)
			touch(b, basePage)
			after := freeHugepages(t, m)
			want := int64(len(addrs))
			for _, n := range m.Nodes {
				t.Logf("hugepage arena on node %d: node %d free_hugepages %d -> %d", node, n.ID, before[n.ID], after[n.ID])
				drop := before[n.ID] - after[n.ID]
				switch {
				case n.ID == node && drop != want:
					t.Errorf("node %d: free_hugepages dropped by %d, want %d (the arena's %d MiB)", n.ID, drop, want, r.Mapped>>20)
				case n.ID != node && drop != 0:
					t.Errorf("node %d: free_hugepages dropped by %d, want 0 (the arena is bound to node %d)", n.ID, drop, node)
				}
			}
			nodes := pageNodes(t, addrs)
			t.Logf("hugepage arena on node %d: move_pages: %d hugepages on nodes %v", node, len(addrs), histogram(nodes))
			requireAll(t, nodes, node, "hugepages")
			requireAll(t, pageNodes(t, []uintptr{addr(b)}), node, "allocated block")
			line, counts := numaMaps(t, addr(b))
			t.Logf("hugepage arena on node %d: numa_maps: %s", node, line)
			if !strings.Contains(line, " huge ") || !strings.Contains(line, "kernelpagesize_kB=2048") {
				t.Errorf("numa_maps line is not a 2 MiB hugetlb mapping: %s", line)
			}
			requireNumaMaps(t, line, counts, node, "bind:"+strconv.Itoa(node))
			a.Free(b)
			closed = true
			closeArena(t, a)
			final := freeHugepages(t, m)
			t.Logf("hugepage arena on node %d: after Close node %d free_hugepages %d", node, node, final[node])
			if !maps.Equal(final, before) {
				t.Errorf("after Close: free_hugepages %v, want %v back", final, before)
			}
		})
	}
}

// TestPinning is check 4: pinning to node 1 keeps the thread on CPUs 2-3,
// memory it then touches first lands on node 1, and pinning to the
// memory-only node (or a node that does not exist) fails and says why.
func TestPinning(t *testing.T) {
	m := guestMachine(t)
	// Held for the rest of the goroutine and never unlocked: the thread
	// exits with it, so its CPU mask cannot leak to other goroutines.
	runtime.LockOSThread()
	old, err := topology.ThreadAffinity()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := topology.PinCurrentThread(old); err != nil {
			t.Errorf("restore affinity %v: %v", old, err)
		}
	}()
	t.Logf("affinity before: %v", old)

	if err := m.PinCurrentThreadToNode(1); err != nil {
		t.Fatalf("PinCurrentThreadToNode(1): %v", err)
	}
	got, err := topology.ThreadAffinity()
	if err != nil {
		t.Fatal(err)
	}
	cpu := getcpu(t)
	t.Logf("PinCurrentThreadToNode(1): ThreadAffinity=%v, running on cpu %d", got, cpu)
	if !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("affinity after pinning to node 1: %v, want [2 3]", got)
	}
	if cpu != 2 && cpu != 3 {
		t.Errorf("getcpu after pinning to node 1: cpu %d, want 2 or 3", cpu)
	}

	// An unbound arena prefaulted by the pinned thread: first touch, local
	// node. This is why operators are pinned near their data.
	a, err := buffers.New(buffers.ArenaConfig{Kind: buffers.KindPlain, Node: buffers.NoNode, Prefault: true, ExtentSize: extentLen, LargeCache: -1})
	if err != nil {
		t.Fatalf("buffers.New(plain, unbound): %v", err)
	}
	b := a.Allocate(1 << 20)
	touch(b, basePage)
	nodes := pageNodes(t, pages(b, basePage))
	t.Logf("unbound arena touched from node 1's CPUs: move_pages: pages on nodes %v", histogram(nodes))
	requireAll(t, nodes, 1, "first-touch block")
	a.Free(b)
	closeArena(t, a)

	for _, node := range []int{memoryOnly, 7} {
		err := m.PinCurrentThreadToNode(node)
		t.Logf("PinCurrentThreadToNode(%d): %v", node, err)
		if err == nil {
			t.Errorf("PinCurrentThreadToNode(%d) succeeded; want an error", node)
			continue
		}
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("PinCurrentThreadToNode(%d): %v does not wrap EINVAL", node, err)
		}
		want := "no such node"
		if node == memoryOnly {
			want = "memory only"
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("PinCurrentThreadToNode(%d): %q does not say %q", node, err, want)
		}
		if now, _ := topology.ThreadAffinity(); !slices.Equal(now, []int{2, 3}) {
			t.Errorf("a failed pin changed the affinity: %v, want [2 3] kept", now)
		}
	}
}

// --- helpers

func closeArena(t *testing.T, a *buffers.Allocator) {
	t.Helper()
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// pages returns the address of every page of size page that b touches.
func pages(b []byte, page uintptr) []uintptr {
	start := addr(b) &^ (page - 1)
	var out []uintptr
	for p := start; p < addr(b)+uintptr(len(b)); p += page {
		out = append(out, p)
	}
	return out
}

// touch writes one byte per page of b.
func touch(b []byte, page int) {
	for i := 0; i < len(b); i += page {
		b[i] = 1
	}
}

func pageNodes(t *testing.T, addrs []uintptr) []int {
	t.Helper()
	nodes, err := topology.PageNodes(addrs)
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

func present(nodes []int) int {
	n := 0
	for _, v := range nodes {
		if v >= 0 {
			n++
		}
	}
	return n
}

// histogram renders page counts by node ("node1=256"; a negative entry is
// an errno: -2 not present, -14 not mapped).
func histogram(nodes []int) string {
	count := map[int]int{}
	for _, n := range nodes {
		count[n]++
	}
	keys := make([]int, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		if k < 0 {
			parts = append(parts, fmt.Sprintf("errno%d=%d", -k, count[k]))
		} else {
			parts = append(parts, fmt.Sprintf("node%d=%d", k, count[k]))
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func requireAll(t *testing.T, nodes []int, want int, what string) {
	t.Helper()
	if len(nodes) == 0 {
		t.Fatalf("%s: no pages to check", what)
	}
	for i, n := range nodes {
		if n != want {
			t.Fatalf("%s: page %d of %d is on %d, want node %d (all pages: %s)", what, i, len(nodes), n, want, histogram(nodes))
		}
	}
}

// numaMaps returns the /proc/self/numa_maps line of the mapping holding a
// (found through /proc/self/maps) and its N<node>=<pages> counts.
func numaMaps(t *testing.T, a uintptr) (string, map[int]int64) {
	t.Helper()
	start, ok := vmaStart(t, a)
	if !ok {
		t.Fatalf("%#x: no mapping in /proc/self/maps", a)
	}
	data, err := os.ReadFile("/proc/self/numa_maps")
	if err != nil {
		t.Fatal(err)
	}
	prefix := strconv.FormatUint(uint64(start), 16) + " "
	for line := range strings.SplitSeq(string(data), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		counts := map[int]int64{}
		for _, f := range strings.Fields(line) {
			k, v, ok := strings.Cut(f, "=")
			if !ok || len(k) < 2 || k[0] != 'N' {
				continue
			}
			n, err1 := strconv.Atoi(k[1:])
			c, err2 := strconv.ParseInt(v, 10, 64)
			if err1 == nil && err2 == nil {
				counts[n] = c
			}
		}
		return line, counts
	}
	t.Fatalf("no /proc/self/numa_maps line for the mapping at %#x", start)
	return "", nil
}

// vmaStart returns the start of the /proc/self/maps entry holding a.
func vmaStart(t *testing.T, a uintptr) (uintptr, bool) {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rng, _, _ := strings.Cut(sc.Text(), " ")
		lo, hi, ok := strings.Cut(rng, "-")
		if !ok {
			continue
		}
		l, err1 := strconv.ParseUint(lo, 16, 64)
		h, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && uint64(a) >= l && uint64(a) < h {
			return uintptr(l), true
		}
	}
	return 0, false
}

func requireNumaMaps(t *testing.T, line string, counts map[int]int64, node int, policy string) {
	t.Helper()
	if f := strings.Fields(line); len(f) < 2 || f[1] != policy {
		t.Errorf("numa_maps policy: %q, want %s", line, policy)
	}
	if len(counts) != 1 || counts[node] == 0 {
		t.Errorf("numa_maps pages by node %v, want all on node %d", counts, node)
	}
}

// freeHugepages reads each node's free 2 MiB hugepages from sysfs.
func freeHugepages(t *testing.T, m *topology.Machine) map[int]int64 {
	t.Helper()
	out := map[int]int64{}
	for _, n := range m.Nodes {
		p := fmt.Sprintf("/sys/devices/system/node/node%d/hugepages/hugepages-2048kB/free_hugepages", n.ID)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[n.ID] = v
	}
	return out
}

// getcpu returns the CPU the calling thread runs on (getcpu(2); x/sys/unix
// has no wrapper).
func getcpu(t *testing.T) int {
	t.Helper()
	var cpu, node uint32
	if _, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), uintptr(unsafe.Pointer(&node)), 0); e != 0 {
		t.Fatalf("getcpu: %v", e)
	}
	return int(cpu)
}

// TestHugepageShortNodePool: a hugetlb arena bound to a node whose own
// pool is too small, while the machine-wide pool is big enough. The mmap
// reservation is machine-wide, so without care the first touch would
// SIGBUS; the arena faults the bound pages in at once, sees the failure,
// and falls back to THP on that node, saying why. Every pool is whole
// again afterwards.
func TestHugepageShortNodePool(t *testing.T) {
	m := guestMachine(t)
	const node = 1
	before := freeHugepages(t, m)
	var total int64
	for _, n := range before {
		total += n
	}
	want := before[node] + 4 // pages: more than node 1 has, less than all nodes have
	if want > total {
		t.Fatalf("pools %v: the machine-wide pool must exceed node %d's for this check", before, node)
	}
	a, err := buffers.New(buffers.ArenaConfig{
		Kind: buffers.KindHugepage, Page: buffers.Page2MiB, Bind: true, Node: node, Prefault: true,
		ExtentSize: want * hugePage, LargeCache: -1,
	})
	if err != nil {
		t.Fatalf("buffers.New: %v", err)
	}
	r := a.Backing()
	t.Logf("hugetlb arena of %d pages on node %d (its pool: %d free, all nodes: %d): fallbacks %q", want, node, before[node], total, r.Fallbacks)
	if len(r.Fallbacks) == 0 || !strings.Contains(r.Fallbacks[0], "cannot fault the pages in") {
		t.Fatalf("want a fallback saying the node's pool is short, got %q", r.Fallbacks)
	}
	if e := r.Extents[0]; e.Got == buffers.KindHugepage {
		t.Fatalf("extent still hugetlb: %+v", e)
	}
	b := a.Allocate(1 << 20)
	touch(b, basePage) // SIGBUS here before the fix
	requireAll(t, pageNodes(t, []uintptr{addr(b)}), node, "allocated block")
	a.Free(b)
	closeArena(t, a)
	if after := freeHugepages(t, m); !maps.Equal(after, before) {
		t.Errorf("free_hugepages %v after Close, want %v back", after, before)
	}
}
