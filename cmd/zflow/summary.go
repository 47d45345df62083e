package main

import (
	"io"

	"github.com/zflowdev/zflow/engine"
)

// writeSummary prints the end-of-run table (engine.Summary.WriteText, the
// same an embedder prints).
func writeSummary(w io.Writer, s *engine.Summary) { s.WriteText(w) }
