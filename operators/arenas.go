package operators

// The cxl arena kind (settings.memory.arena: cxl, a shared segment) comes
// with package cxl, which registers it with package buffers when linked.
import _ "github.com/zflowdev/zflow/cxl"
