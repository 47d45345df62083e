package operators

import (
	"runtime"

	"github.com/zflowdev/zflow/engine"
)

// cpuWorkers is how many goroutines one operator instance may keep busy by
// itself (the Parquet sink's column encoders, the Parquet source's row
// group decoders): the CPUs the process may use, runtime.GOMAXPROCS(0),
// which Go sets from the affinity mask and the cgroup CPU quota. It is the
// one place that count comes from, so that a run-wide cap (a future
// settings.threads) is wired here. ic may be nil.
func cpuWorkers(ic *engine.InstanceContext) int {
	_ = ic
	return max(runtime.GOMAXPROCS(0), 1)
}
