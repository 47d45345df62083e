//go:build !linux

package operators

import (
	"context"
	"fmt"

	"github.com/zflowdev/zflow/engine"
)

// runMapped is unreachable off Linux, where no mmap backend registers.
func (s *arrowSource) runMapped(ctx context.Context, fi, unit int, out engine.Emitter) (bool, error) {
	return true, fmt.Errorf("arrow: %s: the mmap backend exists on Linux only", s.f.files.name(fi))
}
