//go:build !linux

package uring

import (
	"errors"
	"fmt"
	"runtime"
)

// Available says io_uring is Linux-only; the backend does not register
// here, so auto picks posix and says only posix exists.
func Available() error {
	return fmt.Errorf("uring: io_uring is Linux-only (this is %s): %w", runtime.GOOS, errors.ErrUnsupported)
}
