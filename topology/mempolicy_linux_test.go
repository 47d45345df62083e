package topology

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mpolMapAnon maps n bytes of anonymous memory outside the Go heap, unmapped
// at the end of the test.
func mpolMapAnon(t *testing.T, n int) (uintptr, []byte) {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatalf("mmap %d bytes: %v", n, err)
	}
	t.Cleanup(func() { _ = unix.Munmap(b) })
	return uintptr(unsafe.Pointer(&b[0])), b
}

func mpolNodes(t *testing.T) int {
	t.Helper()
	n, err := MaxNodes()
	if err != nil {
		t.Fatalf("MaxNodes: %v", err)
	}
	return n
}

// TestMbindNode0 binds fresh memory to node 0, touches it and reads the
// placement back with both get_mempolicy and move_pages.
func TestMbindNode0(t *testing.T) {
	const pages = 16
	pg := os.Getpagesize()
	addr, b := mpolMapAnon(t, pages*pg)
	if err := Mbind(addr, uintptr(len(b)), 0, 0); err != nil {
		t.Fatalf("Mbind node 0: %v", err)
	}
	// Before any touch, move_pages must say "not present" for every page.
	addrs := make([]uintptr, pages)
	for i := range addrs {
		addrs[i] = addr + uintptr(i*pg)
	}
	st, err := PageNodes(addrs)
	if err != nil {
		t.Fatalf("PageNodes before touch: %v", err)
	}
	for i, s := range st {
		if s != -int(unix.ENOENT) {
			t.Errorf("page %d before touch: status %d, want -ENOENT (%d)", i, s, -int(unix.ENOENT))
		}
	}
	for i := 0; i < len(b); i += pg {
		b[i] = 1
	}
	st, err = PageNodes(addrs)
	if err != nil {
		t.Fatalf("PageNodes after touch: %v", err)
	}
	for i, s := range st {
		if s != 0 {
			t.Errorf("page %d after touch: node %d, want 0", i, s)
		}
		n, err := NodeOfAddress(addrs[i])
		if err != nil {
			t.Fatalf("NodeOfAddress(%#x): %v", addrs[i], err)
		}
		if n != 0 {
			t.Errorf("NodeOfAddress page %d: node %d, want 0", i, n)
		}
	}
}

// TestMbindStrictMove binds memory that is already present, with
// MPOL_MF_STRICT|MPOL_MF_MOVE: on node 0 of a one-node machine the pages
// are already there, so it must succeed.
func TestMbindStrictMove(t *testing.T) {
	pg := os.Getpagesize()
	addr, b := mpolMapAnon(t, 4*pg)
	for i := 0; i < len(b); i += pg {
		b[i] = 1
	}
	if err := Mbind(addr, uintptr(len(b)), 0, MbindStrict|MbindMove); err != nil {
		t.Fatalf("Mbind node 0 strict|move: %v", err)
	}
}

// TestMbindMissingNode binds to the first node id the machine does not
// have: the kernel says EINVAL and the error must say which node.
func TestMbindMissingNode(t *testing.T) {
	n := mpolNodes(t)
	missing := n // the first id past the possible ones
	if n > 1 {
		t.Logf("machine has %d possible NUMA nodes; binding to node %d, which cannot exist", n, missing)
	}
	addr, b := mpolMapAnon(t, os.Getpagesize())
	err := Mbind(addr, uintptr(len(b)), missing, 0)
	if err == nil {
		t.Fatalf("Mbind to node %d on a machine with %d possible nodes: no error", missing, n)
	}
	if !errors.Is(err, ErrNodeUnavailable) || !errors.Is(err, unix.EINVAL) {
		t.Errorf("Mbind node %d: %v: want it to wrap ErrNodeUnavailable and EINVAL", missing, err)
	}
	if want := "node " + strconv.Itoa(missing) + " does not exist"; !strings.Contains(err.Error(), want) {
		t.Errorf("Mbind node %d: %q does not contain %q", missing, err, want)
	}
	t.Logf("Mbind to node %d: %v", missing, err)
}

// TestMbindNode1 is the case the design names: node 1 on a one-node
// machine. On a machine with node 1 it has nothing to prove and skips.
func TestMbindNode1(t *testing.T) {
	if n := mpolNodes(t); n > 1 {
		t.Skipf("machine has %d possible NUMA nodes: node 1 may exist, so binding to it proves nothing (TestMbindMissingNode covers node %d)", n, n)
	}
	addr, b := mpolMapAnon(t, os.Getpagesize())
	err := Mbind(addr, uintptr(len(b)), 1, 0)
	if err == nil {
		t.Fatal("Mbind to node 1 on a one-node machine: no error")
	}
	if !strings.Contains(err.Error(), "node 1") || !errors.Is(err, unix.EINVAL) {
		t.Errorf("Mbind node 1: %v: want EINVAL naming node 1", err)
	}
}

func TestMbindNegativeNode(t *testing.T) {
	addr, b := mpolMapAnon(t, os.Getpagesize())
	if err := Mbind(addr, uintptr(len(b)), -1, 0); !errors.Is(err, ErrNodeUnavailable) {
		t.Errorf("Mbind node -1: %v, want ErrNodeUnavailable", err)
	}
}

func TestPageNodesUnmapped(t *testing.T) {
	pg := os.Getpagesize()
	addr, b := mpolMapAnon(t, 2*pg)
	b[0] = 1
	// Unmap the second page: move_pages must say -EFAULT for it.
	// (x/sys's Munmap would unmap the whole mapping: use the raw call.)
	if _, _, e := unix.Syscall(unix.SYS_MUNMAP, addr+uintptr(pg), uintptr(pg), 0); e != 0 {
		t.Fatalf("munmap second page: %v", e)
	}
	st, err := PageNodes([]uintptr{addr, addr + uintptr(pg)})
	if err != nil {
		t.Fatalf("PageNodes: %v", err)
	}
	if st[0] < 0 {
		t.Errorf("touched page: status %d, want a node", st[0])
	}
	if st[1] != -int(unix.EFAULT) {
		t.Errorf("unmapped page: status %d, want -EFAULT (%d)", st[1], -int(unix.EFAULT))
	}
	if st, err := PageNodes(nil); err != nil || st != nil {
		t.Errorf("PageNodes(nil) = %v, %v; want nil, nil", st, err)
	}
}

func TestMaxNodes(t *testing.T) {
	old := mpolSysNodeDir
	t.Cleanup(func() { mpolSysNodeDir = old })
	for _, tc := range []struct {
		possible string
		want     int
		bad      bool
	}{
		{"0\n", 1, false},
		{"0-3\n", 4, false},
		{"0,2-5,7\n", 8, false},
		{"\n", 0, true},
		{"0-x\n", 0, true},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "possible"), []byte(tc.possible), 0o644); err != nil {
			t.Fatal(err)
		}
		mpolSysNodeDir = dir
		got, err := MaxNodes()
		if tc.bad {
			if err == nil {
				t.Errorf("MaxNodes(%q) = %d, want an error", tc.possible, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("MaxNodes(%q) = %d, %v; want %d", tc.possible, got, err, tc.want)
		}
	}
	mpolSysNodeDir = old
	if n, err := MaxNodes(); err != nil || n < 1 {
		t.Errorf("MaxNodes on this machine = %d, %v", n, err)
	}
}
