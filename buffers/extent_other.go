//go:build !linux

package buffers

import "runtime"

// Arenas are Linux-only (see extent_linux.go): on any other OS New fails
// with notLinux, so no mapping is ever made and the stubs below are never
// reached; they exist so that the package, and everything that imports it,
// builds everywhere.

// arenaSupported says why this OS cannot map arenas.
func arenaSupported() error { return notLinux(runtime.GOOS, runtime.GOARCH) }

func (m *mapping) unmap() error { return arenaSupported() }

func (ar *Arena) mapRegion(size uintptr, large bool) (*mapping, error) {
	return nil, arenaSupported()
}
