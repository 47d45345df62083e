package operators

import "github.com/zflowdev/zflow/engine"

// fileBackend records on the instance's span which I/O backend its file
// reads or writes go through, and why. Today every file operator uses
// buffered POSIX reads and writes through package os; the io_uring and
// O_DIRECT backends (package io) will report their choice and fallback
// reason here.
func fileBackend(ic *engine.InstanceContext) {
	ic.SetAttributes(engine.AttrIOBackend.String("posix"),
		engine.AttrIOBackendReason.String("buffered os.File I/O: the io_uring backend is not wired into file operators yet"))
}
