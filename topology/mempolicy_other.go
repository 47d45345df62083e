//go:build !linux

package topology

import (
	"errors"
	"fmt"
	"runtime"
)

// Memory policy is Linux-only (mbind(2), get_mempolicy(2), move_pages(2)
// and /sys/devices/system/node): on other systems each function fails with
// an error that names the call and the OS, and wraps errors.ErrUnsupported.

// Mbind is Linux-only (mbind(2)).
func Mbind(addr uintptr, length uintptr, node int, flags MbindFlags) error {
	return fmt.Errorf("topology: mbind %#x+%d to node %d: %w", addr, length, node, linuxOnly("mbind(2)"))
}

// NodeOfAddress is Linux-only (get_mempolicy(2)).
func NodeOfAddress(addr uintptr) (int, error) {
	return -1, fmt.Errorf("topology: node of address %#x: %w", addr, linuxOnly("get_mempolicy(2)"))
}

// PageNodes is Linux-only (move_pages(2)).
func PageNodes(addrs []uintptr) ([]int, error) {
	return nil, fmt.Errorf("topology: nodes of %d pages: %w", len(addrs), linuxOnly("move_pages(2)"))
}

// MaxNodes is Linux-only (/sys/devices/system/node/possible).
func MaxNodes() (int, error) {
	return 0, fmt.Errorf("topology: possible NUMA nodes: %w", linuxOnly("/sys/devices/system/node"))
}

// linuxOnly says that what is Linux-only and names this OS; it wraps
// errors.ErrUnsupported.
func linuxOnly(what string) error {
	return fmt.Errorf("%s is Linux-only; this is %s/%s: %w", what, runtime.GOOS, runtime.GOARCH, errors.ErrUnsupported)
}
