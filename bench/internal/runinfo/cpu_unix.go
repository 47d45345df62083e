//go:build unix

package runinfo

import (
	"syscall"
	"time"
)

// CPU is this process's user + system CPU time so far (getrusage; io_uring's
// io-wq workers are threads of the process and count too).
func CPU() time.Duration { return rusage(syscall.RUSAGE_SELF) }

// ChildrenCPU is the user + system CPU time of the child processes waited
// for so far.
func ChildrenCPU() time.Duration { return rusage(syscall.RUSAGE_CHILDREN) }

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
