package topology

// Memory policy: thin wrappers of the mbind(2), get_mempolicy(2) and
// move_pages(2) system calls (x/sys/unix has no wrapper for them, so they go
// through unix.Syscall6). They work on address ranges the caller mapped
// itself (mmap), outside the Go heap: binding or inspecting Go heap memory
// is legal but means nothing, the runtime moves and reuses it.

import (
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The MbindFlags values are the kernel's: these fail to compile (a negative
// constant converted to uint) if they ever differ from x/sys/unix.
const (
	_ = uint(MbindStrict-unix.MPOL_MF_STRICT) + uint(unix.MPOL_MF_STRICT-MbindStrict)
	_ = uint(MbindMove-unix.MPOL_MF_MOVE) + uint(unix.MPOL_MF_MOVE-MbindMove)
)

// mpolSysNodeDir is where the kernel lists NUMA nodes; a variable for tests.
var mpolSysNodeDir = "/sys/devices/system/node"

// Mbind sets the memory policy of the range [addr, addr+length) to
// MPOL_BIND on the one node: pages faulted in from then on come from that
// node only (the fault fails rather than spill to another node). addr must
// be page aligned (the start of an mmap'd region); length is rounded up to
// pages by the kernel. Pages already present stay where they are unless
// flags has MbindMove. The range is the caller's: Mbind does not keep it.
//
// A node that does not exist or has no memory makes the kernel answer
// EINVAL; the error then names the node and wraps both ErrNodeUnavailable
// and unix.EINVAL.
func Mbind(addr uintptr, length uintptr, node int, flags MbindFlags) error {
	if node < 0 {
		return fmt.Errorf("topology: mbind %#x+%d to node %d: negative node: %w", addr, length, node, ErrNodeUnavailable)
	}
	// One bit per node, in unsigned longs. The kernel reads maxnode-1 bits
	// (mm/mempolicy.c get_nodes decrements it), so pass one more.
	const wordBits = bits.UintSize
	mask := make([]uint, node/wordBits+1)
	mask[node/wordBits] = 1 << (uint(node) % wordBits)
	maxnode := uintptr(len(mask)*wordBits + 1)
	_, _, e := unix.Syscall6(unix.SYS_MBIND, addr, length, unix.MPOL_BIND,
		uintptr(unsafe.Pointer(&mask[0])), maxnode, uintptr(flags))
	if e == 0 {
		return nil
	}
	if e == unix.EINVAL && !mpolNodeHasMemory(node) {
		n, err := MaxNodes()
		possible := "unknown number of possible nodes"
		if err == nil {
			possible = fmt.Sprintf("%d possible", n)
		}
		return fmt.Errorf("topology: mbind %#x+%d to node %d: node %d does not exist or has no memory (%s): %w: %w",
			addr, length, node, node, possible, ErrNodeUnavailable, e)
	}
	return fmt.Errorf("topology: mbind %#x+%d to node %d (flags %#x): %w", addr, length, node, int(flags), e)
}

// NodeOfAddress returns the NUMA node of the page holding addr, from
// get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR). If no page is present there yet,
// the kernel faults one in as if the address were read; for anonymous
// memory that is the shared zero page, whose node says nothing about where
// a write would land. Touch (write) the memory first, or use PageNodes,
// which does not fault.
func NodeOfAddress(addr uintptr) (int, error) {
	var node int32 // the kernel writes an int
	_, _, e := unix.Syscall6(unix.SYS_GET_MEMPOLICY, uintptr(unsafe.Pointer(&node)), 0, 0,
		addr, unix.MPOL_F_NODE|unix.MPOL_F_ADDR, 0)
	if e != 0 {
		return -1, fmt.Errorf("topology: get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR) at %#x: %w", addr, e)
	}
	return int(node), nil
}

// PageNodes returns, for each address, the NUMA node of the page holding it,
// from move_pages(0, n, pages, NULL, status, 0), which only queries and
// faults nothing in. An entry below zero is a negated errno for that page:
// -ENOENT (-2) when the page is not present (never touched, or swapped out),
// -EFAULT (-14) when the address is not mapped. The returned slice is the
// caller's.
func PageNodes(addrs []uintptr) ([]int, error) {
	if len(addrs) == 0 {
		return nil, nil
	}
	status := make([]int32, len(addrs))
	_, _, e := unix.Syscall6(unix.SYS_MOVE_PAGES, 0, uintptr(len(addrs)),
		uintptr(unsafe.Pointer(&addrs[0])), 0, uintptr(unsafe.Pointer(&status[0])), 0)
	if e != 0 {
		return nil, fmt.Errorf("topology: move_pages query of %d pages at %#x: %w", len(addrs), addrs[0], e)
	}
	out := make([]int, len(status))
	for i, s := range status {
		out[i] = int(s)
	}
	return out, nil
}

// MaxNodes returns the number of NUMA node ids the kernel may ever use (the
// highest id in /sys/devices/system/node/possible, plus one). Node ids
// below it may still be offline or hold no memory.
func MaxNodes() (int, error) {
	path := mpolSysNodeDir + "/possible"
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("topology: read possible NUMA nodes: %w", err)
	}
	high := -1
	for _, f := range strings.FieldsFunc(strings.TrimSpace(string(data)), func(r rune) bool { return r == ',' || r == '-' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("topology: parse %s %q: bad node id %q", path, strings.TrimSpace(string(data)), f)
		}
		high = max(high, n)
	}
	if high < 0 {
		return 0, fmt.Errorf("topology: parse %s: no node listed", path)
	}
	return high + 1, nil
}

// mpolNodeHasMemory reports whether sysfs lists node among the nodes with
// memory; when that list cannot be read it falls back to the node's folder.
func mpolNodeHasMemory(node int) bool {
	data, err := os.ReadFile(mpolSysNodeDir + "/has_memory")
	if err != nil {
		_, err := os.Stat(fmt.Sprintf("%s/node%d", mpolSysNodeDir, node))
		return err == nil
	}
	for _, part := range strings.Split(strings.TrimSpace(string(data)), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 == nil && err2 == nil && a <= node && node <= b {
			return true
		}
	}
	return false
}
