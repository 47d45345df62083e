//go:build !linux

package storage

import (
	"errors"
	"fmt"
	"syscall"
)

// ODirect is O_DIRECT where it exists (0 elsewhere).
const ODirect = 0

// DirectAlign is 1 off Linux (no O_DIRECT).
func DirectAlign(fd int, facts Facts) int { return 1 }

// OpenError explains a failed open.
func OpenError(backend, path string, direct bool, err error) error {
	if direct {
		return fmt.Errorf("%s: open %s: %w (O_DIRECT is Linux-only here)", backend, path, err)
	}
	return fmt.Errorf("%s: open %s: %w", backend, path, err)
}

// Transient says whether a call's error is retried: EINTR and EAGAIN.
func Transient(err error) bool {
	return errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN)
}
