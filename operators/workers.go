package operators

import (
	"runtime"

	"github.com/zflowdev/zflow/engine"
)

// cpuWorkers is how many goroutines one operator instance may keep busy by
// itself (the Parquet sink's column encoders, the Parquet source's row
// group decoders, the text sinks' formatters, the arrow sink's
// compressors): the run's resolved settings.threads — the CPUs this
// process may use (affinity mask, cgroup CPU quota, GOMAXPROCS), capped by
// what the pipeline asked — or, outside a compiled run (ic nil or its
// Threads unset), runtime.GOMAXPROCS(0).
func cpuWorkers(ic *engine.InstanceContext) int {
	if ic != nil && ic.Settings.Threads > 0 {
		return ic.Settings.Threads
	}
	return max(runtime.GOMAXPROCS(0), 1)
}
