package buffers

import (
	"errors"
	"testing"
)

// TestNotLinux checks the error New returns off Linux, on any OS: the root
// package logs it as the reason a run uses the Go heap.
func TestNotLinux(t *testing.T) {
	err := notLinux("darwin", "arm64")
	const want = "buffers: arenas need Linux (mmap, madvise, mbind); this is darwin/arm64: unsupported operation"
	if err.Error() != want {
		t.Errorf("notLinux = %q, want %q", err, want)
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("notLinux: %v does not wrap errors.ErrUnsupported", err)
	}
}
