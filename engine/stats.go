package engine

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// opCounters are the live counters of one node, shared by its instances.
type opCounters struct {
	rowsIn, rowsOut       atomic.Int64
	batchesIn, batchesOut atomic.Int64
	bytesIn, bytesOut     atomic.Int64
	ref, copied, created  atomic.Int64
	busy, blocked, idle   atomic.Int64 // nanoseconds

	mu     sync.Mutex
	reason map[string]int64
}

func newOpCounters() *opCounters { return &opCounters{} }

func (c *opCounters) addReason(r string, n int64) {
	c.mu.Lock()
	if c.reason == nil {
		c.reason = map[string]int64{}
	}
	c.reason[r] += n
	c.mu.Unlock()
}

func (c *opCounters) reasons() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.reason)
}

// OpStats are one node's figures for a run.
type OpStats struct {
	ID          string           `json:"id"`
	Type        string           `json:"type"`
	Kind        string           `json:"kind"`
	Instances   int              `json:"instances"`
	RowsIn      int64            `json:"rows_in"`
	RowsOut     int64            `json:"rows_out"`
	BatchesIn   int64            `json:"batches_in"`
	BatchesOut  int64            `json:"batches_out"`
	BytesIn     int64            `json:"bytes_in"`
	BytesOut    int64            `json:"bytes_out"`
	BytesRef    int64            `json:"bytes_by_reference"` // output bytes that share an input's buffers
	BytesCopied int64            `json:"bytes_copied"`       // payload bytes copied (see Copies)
	BytesNew    int64            `json:"bytes_created"`      // output bytes newly made (decoded, computed)
	Copies      map[string]int64 `json:"copies,omitempty"`   // bytes copied by reason
	Busy        time.Duration    `json:"busy_ns"`            // summed over instances
	Blocked     time.Duration    `json:"blocked_ns"`         // waiting on full output edges
	Idle        time.Duration    `json:"idle_ns"`            // waiting for input
}

// Summary is the result of a run.
type Summary struct {
	Pipeline string        `json:"pipeline"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Ops      []OpStats     `json:"operators"`
	Err      string        `json:"error,omitempty"`
	// Memory is where the batches lived, as read back from the kernel; nil
	// when the run used the Go heap (or an allocator the caller passed).
	Memory *MemoryReport `json:"memory,omitempty"`
}

// MemoryReport describes the arena a run allocated from: what was asked
// and what the kernel actually gave (read back from /proc/self/smaps and
// move_pages, not assumed). The layer that made the arena fills it in.
type MemoryReport struct {
	Arena      string           `json:"arena"`                // asked: hugepage, thp or plain
	Page       int64            `json:"page_bytes,omitempty"` // hugepage size asked
	Node       int              `json:"node"`                 // NUMA node asked, -1 for none
	NodeSeen   int              `json:"node_observed"`        // node holding the sampled pages, -1 if none were present
	Mapped     int64            `json:"mapped_bytes"`         // bytes mapped at the end
	Huge       int64            `json:"huge_bytes"`           // of which observed on hugepages (hugetlb or THP)
	ByBacking  map[string]int64 `json:"mapped_by_backing"`    // mapped bytes by what each mapping got: hugetlb, thp, plain
	Peak       int64            `json:"peak_bytes"`           // most bytes allocated at once
	Budget     int64            `json:"budget_bytes,omitempty"`
	SoftBudget int64            `json:"soft_budget_bytes,omitempty"`
	SoftWaits  int64            `json:"soft_budget_waits,omitempty"` // allocations that waited on the soft budget
	Fallbacks  []string         `json:"fallbacks,omitempty"`         // why it got less than asked
}

// Op returns the stats of node id, or nil.
func (s *Summary) Op(id string) *OpStats {
	for i := range s.Ops {
		if s.Ops[i].ID == id {
			return &s.Ops[i]
		}
	}
	return nil
}

// Totals sums the figures of the sources (rows/bytes read) and the copies of
// all nodes.
func (s *Summary) Totals() (rowsIn, bytesIn, copied, ref int64) {
	for _, o := range s.Ops {
		if o.Kind == KindSource.String() {
			rowsIn += o.RowsOut
			bytesIn += o.BytesOut
		}
		copied += o.BytesCopied
		ref += o.BytesRef
	}
	return
}

func (c *opCounters) snapshot(n *planNode) OpStats {
	return OpStats{
		ID: n.ID, Type: n.Spec.Name, Kind: n.Spec.Kind.String(), Instances: n.Parallelism,
		RowsIn: c.rowsIn.Load(), RowsOut: c.rowsOut.Load(),
		BatchesIn: c.batchesIn.Load(), BatchesOut: c.batchesOut.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		BytesRef: c.ref.Load(), BytesCopied: c.copied.Load(), BytesNew: c.created.Load(),
		Copies: c.reasons(),
		Busy:   time.Duration(c.busy.Load()), Blocked: time.Duration(c.blocked.Load()),
		Idle: time.Duration(c.idle.Load()),
	}
}

// BatchBytes is the payload size of a batch: the summed length of every
// buffer it references (children and dictionaries included).
func BatchBytes(b arrow.RecordBatch) int64 {
	var n int64
	for _, c := range b.Columns() {
		n += dataBytes(c.Data())
	}
	return n
}

// ArrayBytes is BatchBytes for one array.
func ArrayBytes(d arrow.ArrayData) int64 { return dataBytes(d) }

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	if dd, ok := d.(*array.Data); ok {
		// Dictionary returns a typed nil inside a non-nil interface.
		if dict, ok := dd.Dictionary().(*array.Data); ok && dict != nil {
			n += dataBytes(dict)
		}
	}
	return n
}

// bufSet collects the buffers of a batch, to tell which output buffers are
// shared with an input (passed by reference) and which are new.
type bufSet struct{ ptrs []*memory.Buffer }

func (s *bufSet) reset(b arrow.RecordBatch) {
	s.ptrs = s.ptrs[:0]
	if b == nil {
		return
	}
	for _, c := range b.Columns() {
		s.add(c.Data())
	}
}

func (s *bufSet) add(d arrow.ArrayData) {
	for _, b := range d.Buffers() {
		if b != nil && b.Len() > 0 {
			s.ptrs = append(s.ptrs, b)
		}
	}
	for _, c := range d.Children() {
		s.add(c)
	}
}

func (s *bufSet) has(b *memory.Buffer) bool {
	for _, p := range s.ptrs {
		if p == b || (p.Len() > 0 && b.Len() > 0 && &p.Bytes()[0] == &b.Bytes()[0]) {
			return true
		}
	}
	return false
}

// sharedBytes returns how many bytes of out's buffers come from s.
func (s *bufSet) sharedBytes(out arrow.RecordBatch) int64 {
	var n int64
	for _, c := range out.Columns() {
		n += s.sharedData(c.Data())
	}
	return n
}

func (s *bufSet) sharedData(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil && b.Len() > 0 && s.has(b) {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += s.sharedData(c)
	}
	return n
}
