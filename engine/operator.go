package engine

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.opentelemetry.io/otel/trace"

	"github.com/zflowdev/zflow/buffers"
)

// Emitter takes batches from an operator. Emit takes ownership of one
// reference to b in every case, error included: the caller must not Release
// b after Emit (Retain first to keep using it). Emit blocks while the
// consumers' edges are full (backpressure). It returns ErrStop when no
// consumer wants more, or the context's error when the run is cancelled.
type Emitter interface {
	Emit(b arrow.RecordBatch) error
}

// LaneEmitter is the Emitter of an instance whose Spec sets Exchange: it
// chooses which instance of each consumer gets a batch. Lane k is read by
// instance k of every consumer (they all run Lanes() instances); Emit
// still sends to whichever lane has room.
type LaneEmitter interface {
	Emitter
	Lanes() int
	EmitLane(k int, b arrow.RecordBatch) error
}

// PortEmitter is the Emitter of every instance: EmitPort emits to output
// port k of the node (Spec.Outputs[k-1]; 0 is Emit), and PortUsed says
// whether a node reads port k, so that an operator makes nothing for a
// port nobody reads. EmitPort to a port nobody reads releases the batch.
type PortEmitter interface {
	Emitter
	EmitPort(k int, b arrow.RecordBatch) error
	PortUsed(k int) bool
}

// Source produces batches. Run returns when it has emitted everything, when
// Emit returns an error (return it; ErrStop counts as success), or when ctx is
// done.
type Source interface {
	Run(ctx context.Context, out Emitter) error
}

// Transform turns input batches into output batches. Process gets in
// borrowed for the call (Retain to keep it) and port, the index of the input
// it came from. A transform that needs no more input returns ErrStop.
type Transform interface {
	Process(ctx context.Context, port int, in arrow.RecordBatch, out Emitter) error
}

// Finisher is an optional Transform interface, called once per instance after
// its input is exhausted (or after it returned ErrStop), to emit what it held.
type Finisher interface {
	Finish(ctx context.Context, out Emitter) error
}

// PortEnder is the Transform interface of an operator whose Spec sets
// PortEnds. EndPort(port) is called once on every instance of the node
// after input port has ended — its producer has finished and every batch
// it sent has been processed, by whichever instance took it — before the
// instance processes its next batch, or, when no batch comes, before
// Finish. A join learns there that its build side is complete. Nothing
// waits for it: an instance takes batches of any port at any time, so a
// source feeding both ports, or upstream backpressure, cannot deadlock the
// node. EndPort may emit; an error fails the run as one from Process.
type PortEnder interface {
	EndPort(ctx context.Context, port int, out Emitter) error
}

// Sink consumes batches. Write gets in borrowed for the call. When all input
// has been written the executor calls Close, which finishes the output under
// a temporary name. Only when every node of the run has succeeded does it call
// Commit, which publishes the output under its final name; on any error or
// cancellation it calls Abort instead, which removes what was written. Abort
// may follow Close (and a failed Commit), and must be safe to call more than
// once.
//
// A run with several sinks commits them all or none only if they implement
// UndoableSink (every built-in file sink does): if one Commit fails, the
// sinks committed before it are rolled back. A sink that does not implement
// it is committed after all those that do; it cannot be undone, so if a
// second such sink fails after it, its output stays published (the run's
// error says so).
type Sink interface {
	Write(ctx context.Context, port int, in arrow.RecordBatch) error
	Close(ctx context.Context) error
	Commit() error
	Abort()
}

// Outcome is an optional interface of any instance (a source, typically)
// that must learn how the run ended before it lets go of its input:
// RunEnded is called once, after the sinks were committed (committed true:
// every sink's output is final) or aborted (false), before the summary is
// made. A source reading from a log or a queue acknowledges there what
// the run consumed only when committed, so that a run that dies or fails
// leaves it to be read again. An error with committed true fails the run
// although its output is in place (the error should say so).
type Outcome interface {
	RunEnded(committed bool) error
}

// Releaser is an optional interface of any instance (source, transform or
// sink) that holds resources: Release is called once, when the instance's
// goroutine ends (its input done, or the run failed or was cancelled),
// whatever happened. Batches it emitted may still be in use downstream
// then: memory they point into must outlive them, not the instance.
type Releaser interface {
	Release()
}

// InstanceContext is what an operator instance gets from the engine.
type InstanceContext struct {
	Node  string // node id
	Type  string // operator type
	Index int    // this instance, 0 ≤ Index < Count
	Count int    // parallelism of the node
	// Shard and Shards say which share of a sharded run this process is
	// (Settings.Shard; 0 and 1 when the run is not sharded).
	Shard, Shards int
	// Alloc is the instance's allocator: its operator's account of the
	// pool it allocates from (the run's, or the node's own memory:). What
	// it allocates is attributed to the operator, for budgets and stats.
	Alloc memory.Allocator
	// Budget is the same account seen as a budget: what the operator has
	// in use, its limit, and reservations that say no instead of panicking
	// (what a spilling operator decides with). Goroutines an operator
	// starts itself should run under Group, so that a budget overrun in
	// them fails the operator instead of the process.
	Budget   buffers.Budget
	Logger   *slog.Logger
	Ledger   *Ledger
	Settings Settings
	// Stdin is what a source whose path is "-" reads (CompileOptions.Stdin,
	// from its start), and Stdout what a sink whose path is "-" or a stdout
	// sink writes (RunOptions.Stdout, else os.Stdout). The engine lets one
	// node of a run read Stdin and one write Stdout.
	Stdin  io.Reader
	Stdout io.Writer
	// Lanes is, for an exchange (Spec.Exchange), how many instances each
	// of its consumers runs: the lanes its emitter (a LaneEmitter) routes
	// batches to. 0 elsewhere.
	Lanes int
	// PartitionedBy is set when every input of a node running several
	// instances comes through a hash exchange by these columns (an
	// ExchangeKeyer): all the rows of one key reach one instance, so an
	// instance may keep a key's state to itself (an aggregate grouping by
	// these columns and perhaps more need not merge its instances').
	PartitionedBy []string

	span   trace.Span
	shared *sharedSlot   // the node's value for Shared; nil outside a run
	files  *atomic.Int64 // the instance's file counter; nil outside a run
	// blocks are the instance's counters of blocks read and skipped
	// (CountBlocks); nil outside a run.
	blocks *[2]atomic.Int64
	io     *atomic.Pointer[string] // the instance's storage backend line; nil outside a run
	spill  *spillCounters          // what the instance spilled (CountSpill); nil outside a run
}

// SetIO records the storage backend the instance's files go through and
// why: on its span (zflow.io.backend, zflow.io.backend.reason) and in the
// summary (OpStats.IO, "uring (reason)"). A source reading several files
// calls it for each; the summary keeps the last.
func (ic *InstanceContext) SetIO(backend, reason string) {
	if ic == nil {
		return
	}
	ic.SetAttributes(AttrIOBackend.String(backend), AttrIOBackendReason.String(reason))
	if ic.io != nil {
		line := backend
		if reason != "" {
			line += " (" + reason + ")"
		}
		ic.io.Store(&line)
	}
}

// Workers is how many goroutines one operator instance may keep busy by
// itself (a sink's column encoders, a source's row group decoders, a hash
// operator's partition workers): the run's resolved settings.threads — the
// CPUs this process may use (affinity mask, cgroup CPU quota, GOMAXPROCS),
// capped by what the pipeline asked — or, outside a compiled run (ic nil or
// its Threads unset), runtime.GOMAXPROCS(0).
func (ic *InstanceContext) Workers() int {
	if ic != nil && ic.Settings.Threads > 0 {
		return ic.Settings.Threads
	}
	return max(runtime.GOMAXPROCS(0), 1)
}

// sharedSlot holds what the instances of one node share in one run.
type sharedSlot struct {
	once sync.Once
	v    any
}

// Shared returns the value the instances of this node share in this run:
// the first instance to ask makes it with make, the others get the same
// value (they may ask from New, which runs for every instance before any
// starts). The value lives as long as the instances use it; the last one
// to Release lets go of what it holds. Outside a run (ic nil, or a context
// the engine did not make) every call makes a new value.
func (ic *InstanceContext) Shared(make func() any) any {
	if ic == nil || ic.shared == nil {
		return make()
	}
	ic.shared.once.Do(func() { ic.shared.v = make() })
	return ic.shared.v
}

// CountFiles adds n to the files the instance has read (a source) or
// written (a sink), shown in the summary (OpStats.Files). A file source
// counts each input it opens, a partitioned sink each file it writes.
func (ic *InstanceContext) CountFiles(n int) {
	if ic != nil && ic.files != nil {
		ic.files.Add(int64(n))
	}
}

// Mine says whether this instance reads unit u of a shardable source's
// data (units numbered 0, 1, … across its inputs: files, row groups,
// batches). A sharded run deals the units to the shards first (u mod
// Shards) and each shard's to its instances next, so that a shard's
// split does not depend on how many instances the others run (their CPU
// counts may differ); a run of one shard splits by Index and Count.
func (ic *InstanceContext) Mine(u int) bool {
	shards, count := max(ic.Shards, 1), max(ic.Count, 1)
	return u%shards == ic.Shard && (u/shards)%count == ic.Index
}

// ShareRange is this instance's rows [lo, hi) of total rows split into
// contiguous ranges: the shard's range first, then the instance's part of
// it.
func (ic *InstanceContext) ShareRange(total int64) (lo, hi int64) {
	lo, hi = splitRange(0, total, ic.Shard, max(ic.Shards, 1))
	return splitRange(lo, hi, ic.Index, max(ic.Count, 1))
}

// splitRange is part k of n of [lo, hi), the first (hi-lo) mod n parts a
// row longer.
func splitRange(lo, hi int64, k, n int) (int64, int64) {
	total := hi - lo
	base, rem := total/int64(n), total%int64(n)
	a := lo + base*int64(k) + min(int64(k), rem)
	b := a + base
	if int64(k) < rem {
		b++
	}
	return a, b
}
