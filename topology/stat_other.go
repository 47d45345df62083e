//go:build !linux

package topology

import (
	"errors"
	"fmt"
)

func statDev(path string) (char bool, major, minor uint32, err error) {
	return false, 0, 0, fmt.Errorf("stat device numbers: %w", errors.ErrUnsupported)
}
