//go:build !linux

package topology

import "fmt"

// statDev is Linux-only here: it needs st_rdev and the kernel's device
// numbers, which /sys/dev/block is keyed by.
func statDev(path string) (char bool, major, minor uint32, err error) {
	return false, 0, 0, fmt.Errorf("stat device numbers: %w", linuxOnly("/sys/dev"))
}
