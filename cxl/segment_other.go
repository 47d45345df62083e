//go:build !linux

package cxl

import (
	"fmt"
	"runtime"
)

// Segment is an open, mapped segment; off Linux none can be opened.
type Segment struct{ name string }

// Open fails off Linux: segments need mmap MAP_SHARED and fcntl OFD locks.
func Open(path string, opts Options) (*Segment, error) {
	return nil, fmt.Errorf("cxl: segment %s: %w; this is %s/%s", path, ErrUnsupported, runtime.GOOS, runtime.GOARCH)
}

// Name is the path the segment was opened at.
func (s *Segment) Name() string { return s.name }

// Close does nothing: no segment is ever open here.
func (s *Segment) Close() error { return nil }
