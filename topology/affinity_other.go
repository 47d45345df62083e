//go:build !linux

package topology

import (
	"fmt"
	"runtime"
)

// PinCurrentThread is Linux-only (sched_setaffinity(2)): elsewhere it fails
// with an error that wraps errors.ErrUnsupported, and callers run unpinned
// (the root package logs why).
func PinCurrentThread(cpus []int) error {
	return fmt.Errorf("topology: pin thread to cpus %v: %w", cpus, linuxOnly("sched_setaffinity(2)"))
}

// ThreadAffinity is Linux-only (sched_getaffinity(2)).
func ThreadAffinity() ([]int, error) {
	return nil, fmt.Errorf("topology: thread affinity: %w", linuxOnly("sched_getaffinity(2)"))
}

// processAffinity is runtime.NumCPU where no affinity mask can be read.
func processAffinity() int { return runtime.NumCPU() }
