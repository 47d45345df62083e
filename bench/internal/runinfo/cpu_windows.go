package runinfo

import (
	"time"

	"golang.org/x/sys/windows"
)

// CPU is this process's user + kernel CPU time so far (GetProcessTimes).
func CPU() time.Duration {
	var created, exited, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(windows.CurrentProcess(), &created, &exited, &kernel, &user); err != nil {
		return 0
	}
	// A FILETIME used as a duration counts 100 ns ticks.
	ticks := func(f windows.Filetime) int64 { return int64(f.HighDateTime)<<32 | int64(f.LowDateTime) }
	return time.Duration((ticks(kernel) + ticks(user)) * 100)
}

// ChildrenCPU is 0: Windows keeps no total for waited-for children.
func ChildrenCPU() time.Duration { return 0 }
