//go:build linux

package uring

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/pawelgaczynski/giouring"
)

// sysctlDir holds io_uring_disabled and io_uring_group; tests point it at
// a folder of their own to play a kernel that refuses io_uring.
var sysctlDir = "/proc/sys/kernel"

var (
	probeOnce sync.Once
	probeErr  error
)

// Available says whether this process may use io_uring: nil, or why not
// (the sysctl kernel.io_uring_disabled, a seccomp filter's EPERM, a kernel
// without io_uring). It is probed once per process.
func Available() error {
	probeOnce.Do(func() { probeErr = probe() })
	return probeErr
}

// resetProbe forgets the cached probes (tests).
func resetProbe() {
	probeOnce = sync.Once{}
	probeErr = nil
	zcOnce = sync.Once{}
	zcVectored, zcErr = false, nil
}

// probe reads the sysctls, then creates and destroys a one-entry ring: the
// sysctls explain a refusal better than the EPERM io_uring_setup gives.
func probe() error {
	disabled := sysctlDir + "/io_uring_disabled"
	if b, err := os.ReadFile(disabled); err == nil {
		switch v := strings.TrimSpace(string(b)); v {
		case "2":
			return fmt.Errorf("uring: io_uring is disabled for every process (%s = 2)", disabled)
		case "1":
			if err := inGroup(sysctlDir + "/io_uring_group"); err != nil {
				return fmt.Errorf("uring: io_uring is limited to privileged processes and one group (%s = 1): %w", disabled, err)
			}
		}
	}
	r, err := giouring.CreateRing(1)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ENOSYS):
			return fmt.Errorf("uring: this kernel has no io_uring (io_uring_setup: %w)", err)
		case errors.Is(err, syscall.EPERM):
			return fmt.Errorf("uring: io_uring_setup refused (%w): a seccomp filter (containers' default profile) or kernel.io_uring_disabled", err)
		}
		return fmt.Errorf("uring: io_uring_setup: %w", err)
	}
	r.QueueExit()
	return nil
}

// inGroup is nil when the process may use io_uring under
// io_uring_disabled = 1: root, or a member of the group in groupPath.
func inGroup(groupPath string) error {
	if os.Geteuid() == 0 {
		return nil // CAP_SYS_ADMIN, as near as we can tell without libcap
	}
	b, err := os.ReadFile(groupPath)
	if err != nil {
		return fmt.Errorf("not root and %s unreadable: %w", groupPath, err)
	}
	gid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || gid < 0 {
		return fmt.Errorf("not root and no io_uring_group set (%s = %q)", groupPath, strings.TrimSpace(string(b)))
	}
	groups, _ := os.Getgroups()
	if os.Getegid() == gid {
		return nil
	}
	for _, g := range groups {
		if g == gid {
			return nil
		}
	}
	return fmt.Errorf("not root and not in io_uring_group %d", gid)
}
