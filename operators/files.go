package operators

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/zflowdev/zflow/engine"
)

// fileBackend records on the instance's span which I/O backend its file
// reads or writes go through, and why. Today every file operator uses
// buffered POSIX reads and writes through package os; the io_uring and
// O_DIRECT backends (package io) will report their choice and fallback
// reason here.
func fileBackend(ic *engine.InstanceContext) {
	ic.SetAttributes(engine.AttrIOBackend.String("posix"),
		engine.AttrIOBackendReason.String("buffered os.File I/O: the io_uring backend is not wired into file operators yet"))
}

// describeText is the plan line of a text-file source (csv, ndjson): its
// path, its width, and where the types came from.
func describeText(path string, schema *arrow.Schema, inferred bool) string {
	how := "declared columns"
	if inferred {
		how = "inferred types"
	}
	return fmt.Sprintf("%s (%d columns, %s)", path, schema.NumFields(), how)
}
