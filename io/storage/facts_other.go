//go:build !linux

package storage

import "runtime"

// Probe knows nothing but the OS off Linux: auto then picks posix and says
// so.
func Probe(path string) (Facts, error) { return Facts{GOOS: runtime.GOOS}, nil }
