package topology

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// PinCurrentThread restricts the calling OS thread to cpus with
// sched_setaffinity(2). The caller must hold the thread with
// runtime.LockOSThread (and keep it until it restores the old mask, see
// ThreadAffinity), or the Go scheduler may run other goroutines on the
// pinned thread and move this one elsewhere. An empty list, a CPU number
// out of range, or a set with no online CPU is an error that wraps EINVAL,
// so callers can log the reason and run unpinned.
func PinCurrentThread(cpus []int) error {
	if len(cpus) == 0 {
		return fmt.Errorf("topology: pin thread: no cpus given: %w", unix.EINVAL)
	}
	top := 0
	for _, c := range cpus {
		if c < 0 || c >= MaxCPU {
			return fmt.Errorf("topology: pin thread to cpus %v: cpu %d out of range: %w", cpus, c, unix.EINVAL)
		}
		top = max(top, c)
	}
	set := unix.NewCPUSet(top + 1)
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinityDynamic(0, set); err != nil {
		return fmt.Errorf("topology: pin thread to cpus %s: sched_setaffinity: %w", FormatCPUList(cpus), err)
	}
	return nil
}

// ThreadAffinity returns the CPUs the calling OS thread may run on
// (sched_getaffinity(2)); the caller owns the slice. Save it before
// PinCurrentThread to restore it afterwards.
func ThreadAffinity() ([]int, error) {
	set := unix.NewCPUSet(MaxCPU)
	if err := unix.SchedGetaffinityDynamic(0, set); err != nil {
		return nil, fmt.Errorf("topology: thread affinity: sched_getaffinity: %w", err)
	}
	cpus := make([]int, 0, set.Count())
	for c := 0; c < MaxCPU && len(cpus) < cap(cpus); c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// processAffinity counts the CPUs in the process's affinity mask (the
// calling thread's, which every thread inherits unless one was pinned);
// runtime.NumCPU when it cannot be read.
func processAffinity() int {
	set := unix.NewCPUSet(MaxCPU)
	if err := unix.SchedGetaffinityDynamic(0, set); err != nil || set.Count() == 0 {
		return runtime.NumCPU()
	}
	return set.Count()
}
