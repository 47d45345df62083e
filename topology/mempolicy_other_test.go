//go:build !linux

package topology

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// Off Linux every system call wrapper fails with a reason that names it and
// the OS, and wraps errors.ErrUnsupported.
func TestLinuxOnlyCalls(t *testing.T) {
	_, errNode := NodeOfAddress(0)
	_, errPages := PageNodes([]uintptr{0})
	_, errMax := MaxNodes()
	_, errAff := ThreadAffinity()
	for name, err := range map[string]error{
		"Mbind":            Mbind(0, 4096, 0, 0),
		"NodeOfAddress":    errNode,
		"PageNodes":        errPages,
		"MaxNodes":         errMax,
		"PinCurrentThread": PinCurrentThread([]int{0}),
		"ThreadAffinity":   errAff,
	} {
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "Linux-only; this is "+runtime.GOOS) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
