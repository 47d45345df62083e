package topology

import (
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPinCurrentThread pins this thread to its first allowed CPU for real,
// reads the mask back with sched_getaffinity, and restores it.
func TestPinCurrentThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := ThreadAffinity()
	if err != nil {
		t.Fatal(err)
	}
	if len(orig) == 0 {
		t.Fatal("empty affinity")
	}
	defer func() {
		if err := PinCurrentThread(orig); err != nil {
			t.Fatalf("restore: %v", err)
		}
		if got, _ := ThreadAffinity(); !reflect.DeepEqual(got, orig) {
			t.Fatalf("restored %v, was %v", got, orig)
		}
	}()
	cpu := orig[0]
	if err := PinCurrentThread([]int{cpu}); err != nil {
		t.Fatal(err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	if set.Count() != 1 || !set.IsSet(cpu) {
		t.Errorf("pinned to cpu %d, sched_getaffinity says %d CPUs, cpu %d set: %v", cpu, set.Count(), cpu, set.IsSet(cpu))
	}
	if got, err := ThreadAffinity(); err != nil || !reflect.DeepEqual(got, []int{cpu}) {
		t.Errorf("ThreadAffinity() = %v, %v; want [%d]", got, err, cpu)
	}
}

// TestPinErrors: a CPU that does not exist, or none, is EINVAL wrapped with
// the reason; the thread's mask is unchanged.
func TestPinErrors(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := ThreadAffinity()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cpus []int
		want string
	}{
		{[]int{MaxCPU - 1}, "topology: pin thread to cpus 65535: sched_setaffinity: invalid argument"},
		{nil, "topology: pin thread: no cpus given: invalid argument"},
		{[]int{-1}, "cpu -1 out of range: invalid argument"},
		{[]int{0, MaxCPU}, "cpu 65536 out of range: invalid argument"},
	} {
		err := PinCurrentThread(tc.cpus)
		if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PinCurrentThread(%v) = %v; want %q wrapping EINVAL", tc.cpus, err, tc.want)
		}
	}
	if after, _ := ThreadAffinity(); !reflect.DeepEqual(after, before) {
		t.Errorf("affinity changed by failed pins: %v, was %v", after, before)
	}
}

// TestPinToNodeHost pins to node 0 of this machine, then restores.
func TestPinToNodeHost(t *testing.T) {
	m, err := Read(Host())
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := ThreadAffinity()
	if err != nil {
		t.Fatal(err)
	}
	defer PinCurrentThread(orig)
	node := m.Nodes[0]
	if err := m.PinCurrentThreadToNode(node.ID); err != nil {
		t.Fatal(err)
	}
	// A cgroup cpuset may narrow the mask: it must be a non-empty part of
	// the node's CPUs.
	got, _ := ThreadAffinity()
	if len(got) == 0 || len(merge(got, node.CPUs)) != len(node.CPUs) {
		t.Errorf("pinned to node %d: affinity %v, want a part of %v", node.ID, got, node.CPUs)
	}
}

// merge returns the union of two CPU lists.
func merge(a, b []int) []int {
	in := map[int]bool{}
	var out []int
	for _, c := range append(append([]int(nil), a...), b...) {
		if !in[c] {
			in[c] = true
			out = append(out, c)
		}
	}
	return out
}
