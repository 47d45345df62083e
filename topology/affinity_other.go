//go:build !linux

package topology

import (
	"errors"
	"fmt"
)

// PinCurrentThread is supported on Linux only.
func PinCurrentThread(cpus []int) error {
	return fmt.Errorf("topology: pin thread: %w", errors.ErrUnsupported)
}

// ThreadAffinity is supported on Linux only.
func ThreadAffinity() ([]int, error) {
	return nil, fmt.Errorf("topology: thread affinity: %w", errors.ErrUnsupported)
}
