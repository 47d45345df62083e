package engine

import (
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
)

// instCounters are one operator instance's live figures. Only the
// instance's goroutine writes them, with a load and a store (no locked
// instruction, no cache line shared with another instance); they are
// atomics so that Snapshot and the metric pump may read them while it runs.
// The node's figures are the sum over its instances.
type instCounters struct {
	rowsIn, rowsOut       atomic.Int64
	batchesIn, batchesOut atomic.Int64
	bytesIn, bytesOut     atomic.Int64
	ref                   atomic.Int64           // output bytes shared with the input being processed
	busy, blocked, idle   atomic.Int64           // nanoseconds
	files                 atomic.Int64           // files read or written (InstanceContext.CountFiles)
	blocks                [2]atomic.Int64        // blocks read and skipped (InstanceContext.CountBlocks)
	io                    atomic.Pointer[string] // the storage backend and why (InstanceContext.SetIO)
	spill                 spillCounters          // what was spilled (InstanceContext.CountSpill)
	_                     [64]byte               // the next instance's counters start on another cache line
}

// bump adds n to a counter only one goroutine writes.
func bump(c *atomic.Int64, n int64) { c.Store(c.Load() + n) }

// nodeStats are a node's instances' counters and ledger pages.
type nodeStats struct {
	inst []instCounters
	led  []Ledger
}

func newNodeStats(instances int) *nodeStats {
	return &nodeStats{inst: make([]instCounters, instances), led: make([]Ledger, instances)}
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
	BytesRef    int64            `json:"bytes_by_reference"`     // output bytes passed on without a copy (see References)
	BytesCopied int64            `json:"bytes_copied"`           // payload bytes copied (see Copies)
	BytesNew    int64            `json:"bytes_created"`          // output bytes newly made (decoded, computed)
	Copies      map[string]int64 `json:"copies,omitempty"`       // bytes copied by reason
	References  map[string]int64 `json:"by_reference,omitempty"` // bytes by reference by reason ("input": shared with the batch processed)
	Memory      *OpMemory        `json:"memory,omitempty"`       // what the operator allocated, from which pool
	Busy        time.Duration    `json:"busy_ns"`                // summed over instances
	Blocked     time.Duration    `json:"blocked_ns"`             // waiting on full output edges
	Idle        time.Duration    `json:"idle_ns"`                // waiting for input
	Files       int64            `json:"files,omitempty"`        // files read (a source) or written (a sink), as the operator counts them
	IO          string           `json:"io,omitempty"`           // the storage backend its files went through, and why (a file source or sink)
	// BlocksRead and BlocksSkipped count the blocks of data (Parquet row
	// groups) a source read, and skipped by a pushed-down predicate.
	BlocksRead    int64 `json:"blocks_read,omitempty"`
	BlocksSkipped int64 `json:"blocks_skipped,omitempty"`
	// Spill is what a stateful operator wrote out because its state
	// outgrew its budget (nil: nothing).
	Spill *SpillStats `json:"spill,omitempty"`
}

// Summary is the result of a run.
type Summary struct {
	Pipeline string        `json:"pipeline"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Ops      []OpStats     `json:"operators"`
	Err      string        `json:"error,omitempty"`
	// Memory is the run's pool, where the batches lived, as read back from
	// the kernel (arena "heap" or "caller" when they lived on the Go heap
	// or in the allocator the caller passed).
	Memory *MemoryReport `json:"memory,omitempty"`
	// Pools are the operators' own pools (memory: blocks), each listing
	// the operators that allocated from it.
	Pools []MemoryReport `json:"pools,omitempty"`
}

// MemoryReport describes a pool a run allocated from: what was asked and
// what the kernel actually gave (read back from /proc/self/smaps and
// move_pages where the pool can, not assumed).
type MemoryReport = buffers.PoolReport

// OpMemory is what one operator allocated.
type OpMemory struct {
	Pool  string `json:"pool"`                  // the kind of the pool it allocated from
	Own   bool   `json:"own,omitempty"`         // the pool is the operator's own (its memory: block), not the run's
	Peak  int64  `json:"peak_bytes"`            // most bytes it had in use at once (allocated and reserved)
	InUse int64  `json:"in_use_bytes"`          // still in use when the run ended (batches the caller holds)
	Limit int64  `json:"limit_bytes,omitempty"` // its own budget, 0 for none
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

// snapshot sums the node's instances.
func (ns *nodeStats) snapshot(n *planNode) OpStats {
	st := OpStats{ID: n.ID, Type: n.Spec.Name, Kind: n.Spec.Kind.String(), Instances: n.Parallelism}
	var input int64
	for i := range ns.inst {
		c := &ns.inst[i]
		st.RowsIn += c.rowsIn.Load()
		st.RowsOut += c.rowsOut.Load()
		st.BatchesIn += c.batchesIn.Load()
		st.BatchesOut += c.batchesOut.Load()
		st.BytesIn += c.bytesIn.Load()
		st.BytesOut += c.bytesOut.Load()
		input += c.ref.Load()
		st.Busy += time.Duration(c.busy.Load())
		st.Blocked += time.Duration(c.blocked.Load())
		st.Idle += time.Duration(c.idle.Load())
		st.Files += c.files.Load()
		st.BlocksRead += c.blocks[0].Load()
		st.BlocksSkipped += c.blocks[1].Load()
		if c.spill.files.Load() > 0 || c.spill.bytes.Load() > 0 {
			if st.Spill == nil {
				st.Spill = &SpillStats{}
			}
			st.Spill.add(&c.spill)
		}
		if p := c.io.Load(); p != nil && st.IO == "" {
			st.IO = *p
		}
	}
	st.BytesRef = input
	for i := range ns.led {
		l := &ns.led[i]
		st.BytesRef += l.ref.Load()
		st.BytesCopied += l.copied.Load()
		st.Copies = l.copies.snapshot(st.Copies)
		st.References = l.refs.snapshot(st.References)
	}
	if input > 0 {
		if st.References == nil {
			st.References = map[string]int64{}
		}
		st.References[RefInput] += input
	}
	if n.Spec.Kind != KindSink {
		st.BytesNew = max(0, st.BytesOut-st.BytesRef-st.BytesCopied)
	}
	return st
}

// RefInput is the by-reference reason of output bytes the engine found
// shared with the batch being processed.
const RefInput = "input"

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
