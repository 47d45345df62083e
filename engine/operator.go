package engine

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.opentelemetry.io/otel/trace"
)

// Emitter takes batches from an operator. Emit takes ownership of one
// reference to b in every case, error included: the caller must not Release
// b after Emit (Retain first to keep using it). Emit blocks while the
// consumers' edges are full (backpressure). It returns ErrStop when no
// consumer wants more, or the context's error when the run is cancelled.
type Emitter interface {
	Emit(b arrow.RecordBatch) error
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

// Releaser is an optional interface of any instance (source, transform or
// sink) that holds resources: Release is called once when the run ends,
// whatever happened.
type Releaser interface {
	Release()
}

// InstanceContext is what an operator instance gets from the engine.
type InstanceContext struct {
	Node     string // node id
	Type     string // operator type
	Index    int    // this instance, 0 ≤ Index < Count
	Count    int    // parallelism of the node
	Alloc    memory.Allocator
	Logger   *slog.Logger
	Ledger   *Ledger
	Settings Settings

	span trace.Span // the instance's span, with tracing on
}

// Ledger is an operator's page of the copy ledger. Every place that copies
// payload bytes (bytes that already existed in a buffer, as opposed to bytes
// it creates by parsing or computing) reports them here, with a short reason
// ("parquet encode", "filter take"). Safe for concurrent use.
type Ledger struct {
	stats *opCounters
	own   atomic.Int64 // this instance's share
}

// Copied records n payload bytes copied for reason.
func (l *Ledger) Copied(reason string, n int64) {
	if l == nil || l.stats == nil || n == 0 {
		return
	}
	l.stats.copied.Add(n)
	l.own.Add(n)
	l.stats.addReason(reason, n)
}

// NewLedger returns a free-standing ledger, for using an operator outside a run
// (tests, benchmarks). Its figures are read with Copies.
func NewLedger() *Ledger { return &Ledger{stats: newOpCounters()} }

// Copies returns the bytes reported as copied, by reason.
func (l *Ledger) Copies() map[string]int64 {
	if l == nil || l.stats == nil {
		return nil
	}
	return l.stats.reasons()
}
