package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zflowdev/zflow/engine"
)

// writeSummary prints the end-of-run table: per operator rows, batches,
// bytes, bytes by reference and bytes copied, and where the time went; then
// every copy with its reason.
func writeSummary(w io.Writer, s *engine.Summary) {
	status := "ok"
	if s.Err != "" {
		status = "FAILED"
	}
	rows, bytes, copied, ref := s.Totals()
	rate := float64(rows) / s.Elapsed.Seconds()
	fmt.Fprintf(w, "pipeline %q %s in %s: %s rows, %s read, %s rows/s\n",
		s.Pipeline, status, s.Elapsed.Round(time.Millisecond), humanCount(rows), engine.HumanBytes(bytes), humanCount(int64(rate)))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operator\ttype\trows in\trows out\tbatches\tbytes in\tbytes out\tby ref\tcopied\tbusy\tblocked\t")
	for _, o := range s.Ops {
		batches := o.BatchesOut
		if o.Kind == "sink" {
			batches = o.BatchesIn
		}
		typ := o.Type
		if o.Instances > 1 {
			typ += fmt.Sprintf("×%d", o.Instances)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			o.ID, typ, humanCount(o.RowsIn), humanCount(o.RowsOut), batches,
			engine.HumanBytes(o.BytesIn), engine.HumanBytes(o.BytesOut),
			engine.HumanBytes(o.BytesRef), engine.HumanBytes(o.BytesCopied),
			o.Busy.Round(time.Millisecond), o.Blocked.Round(time.Millisecond))
	}
	tw.Flush()
	fmt.Fprintf(w, "by reference: %s; copied: %s", engine.HumanBytes(ref), engine.HumanBytes(copied))
	var copies []string
	for _, o := range s.Ops {
		for reason, n := range o.Copies {
			copies = append(copies, fmt.Sprintf("%s %s (%s)", o.ID, engine.HumanBytes(n), reason))
		}
	}
	sort.Strings(copies)
	if len(copies) > 0 {
		fmt.Fprintf(w, " — %s", strings.Join(copies, ", "))
	}
	fmt.Fprintln(w)
}
