package cluster

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/zflowdev/zflow/engine"
)

// Report is what a worker says when it ends: its summary, compact enough
// for a Kubernetes termination message (MaxReport bytes).
type Report struct {
	Index   int        `json:"i"`
	Attempt string     `json:"a"`
	Elapsed int64      `json:"ns"`
	Err     string     `json:"err,omitempty"`
	Ops     []OpReport `json:"ops"`
	// Memory is the worker's pool, as its summary reports it (dropped
	// first when the report would not fit MaxReport).
	Memory *engine.MemoryReport `json:"mem,omitempty"`
	// Cut says operators were left out to fit MaxReport.
	Cut bool `json:"cut,omitempty"`
}

// OpReport is one operator's counts in a Report.
type OpReport struct {
	ID          string `json:"id"`
	Instances   int    `json:"n"`
	RowsIn      int64  `json:"ri"`
	RowsOut     int64  `json:"ro"`
	BatchesIn   int64  `json:"bi"`
	BatchesOut  int64  `json:"bo"`
	BytesIn     int64  `json:"bin"`
	BytesOut    int64  `json:"bout"`
	BytesRef    int64  `json:"bref"`
	BytesCopied int64  `json:"bcp"`
	BytesNew    int64  `json:"bnew"`
	Busy        int64  `json:"busy"`
	Files       int64  `json:"f,omitempty"`
}

// MaxReport is the most bytes Kubernetes keeps of a termination message.
const MaxReport = 4096

// NewReport makes worker index's report of its run.
func NewReport(index int, attempt string, s engine.Summary, runErr error) Report {
	r := Report{Index: index, Attempt: attempt, Elapsed: int64(s.Elapsed), Memory: s.Memory}
	if runErr != nil {
		r.Err = runErr.Error()
	}
	for _, o := range s.Ops {
		r.Ops = append(r.Ops, OpReport{ID: o.ID, Instances: o.Instances, RowsIn: o.RowsIn, RowsOut: o.RowsOut,
			BatchesIn: o.BatchesIn, BatchesOut: o.BatchesOut, BytesIn: o.BytesIn, BytesOut: o.BytesOut, BytesRef: o.BytesRef, BytesCopied: o.BytesCopied,
			BytesNew: o.BytesNew, Busy: int64(o.Busy), Files: o.Files})
	}
	return r
}

// Encode is r as JSON of at most MaxReport bytes: an error longer than a
// quarter of that is shortened, then the memory report and then
// operators are left out (Cut) until it fits.
func (r Report) Encode() []byte {
	r.Err = shorten(r.Err, MaxReport/4)
	for {
		b, err := json.Marshal(r)
		if err != nil {
			panic(err) // only strings and numbers: cannot fail
		}
		switch {
		case len(b) <= MaxReport:
			return b
		case r.Memory != nil:
			r.Memory = nil
		case len(r.Ops) > 0:
			r.Ops, r.Cut = r.Ops[:len(r.Ops)-1], true
		default:
			// Escaping made the error longer than it looked (<, >, &
			// become six bytes each): shorten it until it fits.
			r.Err = shorten(r.Err, len(r.Err)/2)
		}
	}
}

// shorten cuts s to at most n bytes on a character boundary, marking the
// cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// DecodeReport reads a report a worker wrote.
func DecodeReport(b []byte) (Report, error) {
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("cluster: a worker's report: %w", err)
	}
	return r, nil
}

// Merge sums the workers' reports into one summary of the run, operator
// by operator (rows, batches, bytes, copies, busy time, files and
// instances add up; the run took as long as its longest worker). Its
// memory is that of the worker whose pool peaked highest.
func Merge(name string, reports []Report) engine.Summary {
	s := engine.Summary{Pipeline: name}
	at := map[string]int{}
	for _, r := range reports {
		s.Elapsed = max(s.Elapsed, time.Duration(r.Elapsed))
		if r.Memory != nil && (s.Memory == nil || r.Memory.Peak > s.Memory.Peak) {
			s.Memory = r.Memory
		}
		for _, o := range r.Ops {
			i, ok := at[o.ID]
			if !ok {
				i = len(s.Ops)
				at[o.ID] = i
				s.Ops = append(s.Ops, engine.OpStats{ID: o.ID})
			}
			t := &s.Ops[i]
			t.Instances += o.Instances
			t.RowsIn += o.RowsIn
			t.RowsOut += o.RowsOut
			t.BatchesIn += o.BatchesIn
			t.BatchesOut += o.BatchesOut
			t.BytesIn += o.BytesIn
			t.BytesOut += o.BytesOut
			t.BytesRef += o.BytesRef
			t.BytesCopied += o.BytesCopied
			t.BytesNew += o.BytesNew
			t.Busy += time.Duration(o.Busy)
			t.Files += o.Files
		}
	}
	return s
}
