//go:build !linux

package operators

import (
	"runtime"

	"github.com/zflowdev/zflow/engine"
)

func buildRDMAOut(bc *engine.BuildContext, c any) (engine.Factory, error) {
	return nil, engine.Errf("address", "rdma_out needs Linux (registered memory, memfd regions); this is %s/%s", runtime.GOOS, runtime.GOARCH)
}

func buildRDMAIn(bc *engine.BuildContext, c any) (engine.Factory, error) {
	return nil, engine.Errf("listen", "rdma_in needs Linux (registered memory, memfd regions); this is %s/%s", runtime.GOOS, runtime.GOARCH)
}
