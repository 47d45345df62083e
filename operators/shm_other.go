//go:build !linux

package operators

import (
	"runtime"

	"github.com/zflowdev/zflow/engine"
)

func buildShmOut(bc *engine.BuildContext, c any) (engine.Factory, error) {
	return nil, engine.Errf("path", "shm_out needs Linux (shared segments: mmap MAP_SHARED, fcntl OFD locks, futexes); this is %s/%s", runtime.GOOS, runtime.GOARCH)
}

func buildShmIn(bc *engine.BuildContext, c any) (engine.Factory, error) {
	return nil, engine.Errf("path", "shm_in needs Linux (shared segments: mmap MAP_SHARED, fcntl OFD locks, futexes); this is %s/%s", runtime.GOOS, runtime.GOARCH)
}
