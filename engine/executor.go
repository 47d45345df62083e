package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/zflowdev/zflow/buffers"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// RunOptions configure one run of a Plan.
type RunOptions struct {
	// Alloc, if set, is the allocator the run's pool is made of instead of
	// Settings.Memory (memory.NewCheckedAllocator in tests, say): each
	// operator still allocates through its own account of it, with its
	// figures in the summary and Settings.Memory.Budget as the hard limit.
	// Nodes with their own Memory still get their own pools.
	Alloc memory.Allocator
	// Memory, if set (and Alloc is not), replaces Settings.Memory for this
	// run's pool: `zflow run --arena` is this. Nodes with their own Memory
	// keep it.
	Memory *buffers.PoolConfig
	// Finish, if set, is called once the sinks have committed or aborted,
	// with the final summary (memory report included), before Wait
	// returns: the caller adds what it owns.
	Finish func(*Summary)
	// OnInstance, if set, is called first thing in each operator instance's
	// goroutine (after the engine pinned it, with Settings.Pin).
	OnInstance func(node, typ string, index int)
	// Logger receives the run's log records; nil discards them.
	Logger *slog.Logger
	// BeforeCommit, if set, is called once every instance has returned and
	// before the sinks commit (or abort): the CLI clears its progress line
	// there, before a stdout sink prints its result.
	BeforeCommit func()
	// Telemetry sends the run's spans and metrics to OpenTelemetry; the
	// zero value records nothing.
	Telemetry Telemetry
	// Stdout is what a sink with path "-" and a stdout sink write; nil
	// means os.Stdout. (Standard input is CompileOptions.Stdin: sources
	// read their schema from it at compile time.)
	Stdout io.Writer
}

// Execution is a running plan.
type Execution struct {
	plan    *Plan
	opts    RunOptions
	ctx     context.Context // the caller's
	runCtx  context.Context // cancelled on the first error
	cancel  context.CancelFunc
	start   time.Time
	stats   []*nodeStats // by plan.nodes index
	inboxes []*inbox     // by plan.nodes index; nil for sources
	mem     *runMemory
	pin     *pinner
	sinks   []Sink
	ends    []ender // instances that implement Outcome
	sinksMu sync.Mutex
	wg      sync.WaitGroup

	errMu sync.Mutex
	err   error

	tel *runTel // nil without telemetry

	done    chan struct{}
	elapsed time.Duration
	summary Summary
}

type item struct {
	port int
	rec  arrow.RecordBatch  // nil: the end of port (PortEnds nodes only)
	size int64              // engine.BatchBytes(rec), computed once by the producer
	edge int32              // index into the run's edge metrics, with metrics on
	at   int64              // when it entered the edge, with metrics on
	sc   *trace.SpanContext // the producer's batch span, when the batch is traced
}

// inbox is a node's input edge. Several producers (fan-in) send into
// bounded channels, its lanes; the last one to finish closes them. A node
// has one lane, which all its instances share, unless an input of it is an
// exchange (Spec.Exchange): then each instance has a lane of its own, which
// the exchange fills with the rows meant for that instance, and other
// producers spread their batches over the lanes.
type inbox struct {
	lanes     []chan item
	producers atomic.Int32
	detached  chan struct{} // closed when the consumer wants no more
	once      sync.Once

	// ends, for a node whose Spec sets PortEnds, counts the batches of
	// each input port: sent by its producer, processed by the node's
	// instances, and whether the producer has finished. A port has ended
	// when its producer has finished and every batch it sent has been
	// processed; each instance checks before it takes its next item and
	// once its input is closed, and calls EndPort then (see PortEnder).
	// Nothing waits: an instance takes any item of any port at any time.
	ends []portEnd

	// Ordered parallel transforms: instances take tickets in the order they
	// receive (under mu) and emit when turn reaches theirs. Nothing is
	// allocated per batch.
	mu    sync.Mutex
	next  uint64 // the next ticket; under mu
	turn  atomic.Uint64
	tmu   sync.Mutex
	tcond sync.Cond // on tmu: turn moved, or the run was cancelled
}

// waitTurn blocks until it is ticket t's turn or the run is cancelled.
func (in *inbox) waitTurn(t uint64, runCtx context.Context) {
	if in.turn.Load() == t {
		return
	}
	in.tmu.Lock()
	for in.turn.Load() != t && runCtx.Err() == nil {
		in.tcond.Wait()
	}
	in.tmu.Unlock()
}

// advance passes the turn on from ticket t.
func (in *inbox) advance(t uint64) {
	in.tmu.Lock()
	in.turn.Store(t + 1)
	in.tmu.Unlock()
	in.tcond.Broadcast()
}

// wake wakes every waiter (the run was cancelled).
func (in *inbox) wake() {
	in.tmu.Lock()
	in.tmu.Unlock() //nolint:staticcheck // an empty section orders the broadcast after a waiter's check
	in.tcond.Broadcast()
}

type portEnd struct {
	sent, done atomic.Int64
	ended      atomic.Bool
}

// portEnds calls EndPort on t for every port of in that has ended since
// the instance last looked (called tells which it was called for).
func portEnds(ctx context.Context, in *inbox, t Transform, called []bool, em *emitter) error {
	for p := range in.ends {
		e := &in.ends[p]
		if called[p] || !e.ended.Load() || e.done.Load() != e.sent.Load() {
			continue
		}
		called[p] = true
		if err := t.(PortEnder).EndPort(ctx, p, em); err != nil {
			return err
		}
	}
	return nil
}

func (in *inbox) detach() { in.once.Do(func() { close(in.detached) }) }

func (in *inbox) isDetached() bool {
	select {
	case <-in.detached:
		return true
	default:
		return false
	}
}

type outEdge struct {
	in   *inbox
	port int   // the consumer's input port
	from int   // the producer's output port: 0 its main output
	edge int32 // index into the run's edge metrics; -1 without metrics
}

// Run runs the plan to completion and returns its summary. The error, if any,
// is an *OpError naming the operator that failed first, or the context's
// error if ctx was cancelled.
func (p *Plan) Run(ctx context.Context, opts RunOptions) (Summary, error) {
	return p.Start(ctx, opts).Wait()
}

// Start starts the plan and returns at once; see Execution.Wait and
// Execution.Snapshot.
func (p *Plan) Start(ctx context.Context, opts RunOptions) *Execution {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	x := &Execution{plan: p, opts: opts, ctx: ctx, start: time.Now(), done: make(chan struct{})}
	x.runCtx, x.cancel = context.WithCancel(ctx)
	mem, memErr := newRunMemory(p, opts)
	if memErr == nil {
		x.mem = mem
		t := &x.opts.Telemetry
		t.Attributes = append(mem.attributes(), t.Attributes...)
		callerGauges := t.Gauges
		t.Gauges = func(o GaugeObserver) {
			mem.gauges(o)
			if callerGauges != nil {
				callerGauges(o)
			}
		}
		if p.Settings.Pin {
			x.opts.Telemetry.Attributes = append(x.opts.Telemetry.Attributes, attribute.Bool("zflow.pin", true))
		}
	}
	x.tel, x.runCtx = newRunTel(x, x.runCtx, x.opts.Telemetry)
	x.tel.startInstances()
	idx := map[*planNode]int{}
	x.stats = make([]*nodeStats, len(p.nodes))
	x.inboxes = make([]*inbox, len(p.nodes))
	for i, n := range p.nodes {
		idx[n] = i
		x.stats[i] = newNodeStats(n.Parallelism)
		if len(n.Inputs) > 0 {
			in := &inbox{lanes: make([]chan item, max(n.lanes, 1)), detached: make(chan struct{})}
			for l := range in.lanes {
				in.lanes[l] = make(chan item, p.Settings.EdgeCapacity)
			}
			in.producers.Store(int32(len(n.Inputs)))
			if n.Spec.PortEnds {
				in.ends = make([]portEnd, len(n.Inputs))
			}
			if n.Parallelism > 1 && !n.unordered() && n.Spec.Kind == KindTransform {
				in.tcond.L = &in.tmu
				context.AfterFunc(x.runCtx, in.wake)
			}
			x.inboxes[i] = in
		}
	}
	if memErr != nil {
		x.err = memErr
		var oe *OpError
		if errors.As(memErr, &oe) {
			x.tel.endUnstarted(idx[p.byID[oe.Op]], 0, memErr)
		} else {
			x.tel.endUnstarted(-1, -1, memErr)
		}
		x.finish()
		return x
	}
	x.pin = newPinner(p, x.mem, opts.Logger)
	// Make every instance first, so a failing constructor starts nothing.
	type inst struct {
		node  int
		ic    *InstanceContext
		op    any
		outs  []outEdge
		left  *atomic.Int32
		inbox *inbox
	}
	var insts []inst
	var buildErr error
	var stdout io.Writer = os.Stdout
	if opts.Stdout != nil {
		stdout = opts.Stdout
	}
	for i, n := range p.nodes {
		var outs []outEdge
		seen := map[*planNode]int{} // a consumer listing n twice (a self-join) is in Consumers twice
		for _, c := range n.Consumers {
			port, k := -1, seen[c]
			seen[c]++
			for j, in := range c.Inputs {
				if in == n {
					if k == 0 {
						port = j
						break
					}
					k--
				}
			}
			edge := int32(-1)
			if x.tel != nil {
				edge = x.tel.m.addEdge(n.ID, c.ID)
			}
			outs = append(outs, outEdge{in: x.inboxes[idx[c]], port: port, from: c.inPorts[port], edge: edge})
		}
		left := &atomic.Int32{}
		left.Store(int32(n.Parallelism))
		shared := &sharedSlot{}
		for k := 0; k < n.Parallelism; k++ {
			acct := x.mem.accts[i]
			ic := &InstanceContext{shared: shared,
				Node: n.ID, Type: n.Spec.Name, Index: k, Count: n.Parallelism,
				Shard: p.Settings.Shard.Index, Shards: max(p.Settings.Shard.Count, 1),
				Alloc: acct, Budget: acct, Logger: opts.Logger.With("op", n.ID),
				Ledger: &x.stats[i].led[k], Settings: p.Settings,
				Stdin: p.stdin, Stdout: stdout, Lanes: n.lanesOut, PartitionedBy: n.partitionedBy,
				span: x.tel.span(i, k), files: &x.stats[i].inst[k].files, io: &x.stats[i].inst[k].io,
				blocks: &x.stats[i].inst[k].blocks, spill: &x.stats[i].inst[k].spill,
			}
			var op any = emptySource{} // a source another shard reads
			var err error
			if !offShard(n, p.Settings.Shard) {
				op, err = newInstance(n, ic)
			}
			if err != nil {
				buildErr = &OpError{Op: n.ID, Type: n.Spec.Name, Instance: k, Err: err}
				x.tel.endUnstarted(i, k, buildErr)
				break
			}
			insts = append(insts, inst{node: i, ic: ic, op: op, outs: outs, left: left, inbox: x.inboxes[i]})
			if s, ok := op.(Sink); ok {
				x.sinks = append(x.sinks, s)
			}
			if o, ok := op.(Outcome); ok {
				x.ends = append(x.ends, ender{o, n.ID})
			}
		}
		if buildErr != nil {
			break
		}
	}
	if buildErr != nil {
		x.err = buildErr
		for _, in := range insts {
			if s, ok := in.op.(Sink); ok {
				s.Abort()
			}
			if r, ok := in.op.(Releaser); ok {
				r.Release()
			}
		}
		x.finish()
		return x
	}
	for _, in := range insts {
		x.wg.Add(1)
		go x.runInstance(in.node, in.ic, in.op, in.inbox, in.outs, in.left)
	}
	x.tel.startMetrics()
	go func() {
		x.wg.Wait()
		x.finish()
	}()
	return x
}

// ender is an instance that implements Outcome, with its node's id.
type ender struct {
	Outcome
	node string
}

// offShard says n is a source this shard does not run: one that cannot
// split its data (not Spec.Shardable) runs on shard 0 alone.
func offShard(n *planNode, s Shard) bool {
	return s.Sharded() && s.Index != 0 && n.Spec.Kind == KindSource && !n.Spec.Shardable
}

// emptySource stands for a source on the shards that do not read it.
type emptySource struct{}

func (emptySource) Run(context.Context, Emitter) error { return nil }

func newInstance(n *planNode, ic *InstanceContext) (op any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic while starting: %v", r)
		}
	}()
	op, err = n.Factory.New(ic)
	if err != nil {
		return nil, err
	}
	var ok bool
	switch n.Spec.Kind {
	case KindSource:
		_, ok = op.(Source)
	case KindTransform:
		_, ok = op.(Transform)
	case KindSink:
		_, ok = op.(Sink)
	}
	if !ok {
		return nil, fmt.Errorf("instance %T does not implement the %s interface (a bug)", op, n.Spec.Kind)
	}
	return op, nil
}

// fail records err from an instance; the first real error cancels the run.
// It tells whether err is a real error (not ErrStop, not a consequence of
// the cancellation).
func (x *Execution) fail(n *planNode, k int, err error) bool {
	if err == nil || errors.Is(err, ErrStop) {
		return false
	}
	if x.runCtx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return false // a consequence of the cancellation, not its cause
	}
	x.errMu.Lock()
	if x.err == nil {
		x.err = &OpError{Op: n.ID, Type: n.Spec.Name, Instance: k, Err: err}
	}
	x.errMu.Unlock()
	x.cancel()
	return true
}

func (x *Execution) runInstance(node int, ic *InstanceContext, op any, in *inbox, outs []outEdge, left *atomic.Int32) {
	defer x.wg.Done()
	n, c := x.plan.nodes[node], &x.stats[node].inst[ic.Index]
	x.pin.pin(node, n)
	if x.opts.OnInstance != nil {
		x.opts.OnInstance(n.ID, n.Spec.Name, ic.Index)
	}
	ctx := x.tel.instCtx(x.runCtx, node, ic.Index)
	em := &emitter{ctx: ctx, outs: outs, c: c, lane: ic.Index, lanes: n.lanesOut}
	if x.tel != nil {
		em.m = x.tel.m
		if x.tel.batches {
			em.bt = &batchTel{rt: x.tel, span: x.tel.span(node, ic.Index), source: n.Spec.Kind == KindSource,
				name: "batch " + n.ID, attrs: []attribute.KeyValue{AttrOperatorID.String(n.ID), AttrInstance.Int(ic.Index)}}
		}
	}
	t0 := time.Now()
	var err error
	var cause bool
	defer func() {
		if r := recover(); r != nil {
			perr, ok := r.(error)
			if !ok || !isReportedPanic(perr) {
				x.opts.Logger.Error("operator panicked", "op", n.ID, "panic", r, "stack", string(debug.Stack()))
				perr = fmt.Errorf("panic: %v", r)
			}
			err = perr
			cause = x.fail(n, ic.Index, perr)
			// The batch borrowed for the call that panicked, and what an
			// ordered instance held back, are still ours to release.
			if em.inflight != nil {
				em.inflight.Release()
				em.inflight = nil
			}
			em.dropBuffered()
		}
		x.tel.endInstance(node, ic.Index, em, ic.Ledger, err, cause)
		if r, ok := op.(Releaser); ok {
			r.Release()
		}
		total := time.Since(t0)
		c.busy.Store(int64(total) - em.blocked - em.idle)
		c.blocked.Store(em.blocked)
		c.idle.Store(em.idle)
		if in != nil && x.runCtx.Err() != nil {
			in.detach()
		}
		if left.Add(-1) == 0 {
			for _, o := range outs {
				if o.in.ends != nil {
					o.in.ends[o.port].ended.Store(true)
				}
				if o.in.producers.Add(-1) == 0 {
					for _, l := range o.in.lanes {
						close(l)
					}
				}
			}
		}
	}()
	switch o := op.(type) {
	case Source:
		err = o.Run(ctx, em)
	case Transform:
		err = x.loopTransform(ctx, n, o, in, em)
	case Sink:
		err = x.loopSink(ctx, o, in, em)
	}
	cause = x.fail(n, ic.Index, err)
}

// recv takes the next item from in; ok is false at the end of input.
func (x *Execution) recv(in *inbox, em *emitter) (item, bool) {
	if in.isDetached() {
		return item{}, false
	}
	ch := in.lanes[em.lane%len(in.lanes)]
	select {
	case it, ok := <-ch:
		em.took(it, ok)
		return it, ok
	default:
	}
	t := time.Now()
	defer func() { em.idle += int64(time.Since(t)) }()
	// Spin, then park: parking and being woken costs a futex round trip
	// and, with a CPU idle, tens of microseconds, more than a small batch
	// takes to make. Yielding lets the producer run if it shares our P.
	for range spinRecv {
		runtime.Gosched()
		select {
		case it, ok := <-ch:
			em.took(it, ok)
			return it, ok
		default:
		}
	}
	select {
	case it, ok := <-ch:
		em.took(it, ok)
		return it, ok
	case <-x.runCtx.Done():
		return item{}, false
	}
}

// spinRecv is how many times a consumer yields, looking for input, before
// it parks on an empty edge: about 15-25 µs with a CPU to itself, the cost
// of the wake-up a park saves (bench-overhead: 8 yields left GOMAXPROCS=2
// at 1Ki-row batches 10-14 % over the plain loop, 128 under it; the price
// is CPU time spent yielding on a core that had nothing else to do).
var spinRecv = 128

// spinSend is how many times a producer yields, looking for room, before
// it parks on a full edge.
var spinSend = 128

// countIn counts an input batch and returns its size.
func countIn(c *instCounters, it item) int64 {
	bump(&c.rowsIn, it.rec.NumRows())
	bump(&c.batchesIn, 1)
	bump(&c.bytesIn, it.size)
	return it.size
}

func (x *Execution) loopTransform(ctx context.Context, n *planNode, t Transform, in *inbox, em *emitter) error {
	ordered := n.Parallelism > 1 && !n.unordered() && !n.Spec.PortEnds
	var called []bool // PortEnds: the ports EndPort was called for
	if in.ends != nil {
		called = make([]bool, len(in.ends))
	}
	em.track = true
	for {
		var it item
		var ok bool
		var ticket uint64
		if ordered {
			in.mu.Lock()
			it, ok = x.recv(in, em)
			if ok {
				ticket = in.next
				in.next++
			}
			in.mu.Unlock()
		} else {
			it, ok = x.recv(in, em)
		}
		if !ok {
			break
		}
		if called != nil {
			if err := portEnds(ctx, in, t, called, em); err != nil {
				it.rec.Release()
				if errors.Is(err, ErrStop) {
					in.detach()
					break
				}
				return err
			}
		}
		size := countIn(em.c, it)
		em.inBufs.reset(it.rec)
		em.buffering = ordered
		pctx, bs := em.bt.arrive(ctx, it, size)
		em.inflight = it.rec
		err := t.Process(pctx, it.port, it.rec, em)
		em.inflight = nil
		if bs != nil {
			em.bt.end(bs, err, x.failure(err))
		}
		it.rec.Release()
		if called != nil {
			in.ends[it.port].done.Add(1)
		}
		em.inBufs.reset(nil)
		if ordered {
			em.buffering = false
			// Wait for our turn even after an error: passing the turn on
			// early would let a later batch out before an earlier one
			// (the wait ends at once when the run is cancelled).
			if in.turn.Load() != ticket { // time blocked on order
				t := time.Now()
				in.waitTurn(ticket, x.runCtx)
				em.blocked += int64(time.Since(t))
			}
			if err == nil || errors.Is(err, ErrStop) {
				if ferr := em.flush(); ferr != nil && err == nil {
					err = ferr
				}
			} else {
				em.dropBuffered()
			}
			in.advance(ticket)
		}
		if errors.Is(err, ErrStop) {
			in.detach()
			break
		}
		if err != nil {
			return err
		}
		if x.runCtx.Err() != nil {
			return x.runCtx.Err()
		}
	}
	if x.runCtx.Err() != nil {
		return x.runCtx.Err()
	}
	if called != nil && !in.isDetached() {
		// Every port has ended, but another instance may still be
		// processing its last batch: wait for it (it waits for nothing of
		// ours, so this ends), then call what is left of EndPort.
		for slices.Contains(called, false) && x.runCtx.Err() == nil {
			if err := portEnds(ctx, in, t, called, em); err != nil && !errors.Is(err, ErrStop) {
				return err
			}
			if slices.Contains(called, false) {
				time.Sleep(20 * time.Microsecond)
			}
		}
		if x.runCtx.Err() != nil {
			return x.runCtx.Err()
		}
	}
	if f, ok := t.(Finisher); ok {
		return f.Finish(ctx, em)
	}
	return nil
}

func (x *Execution) loopSink(ctx context.Context, s Sink, in *inbox, em *emitter) error {
	for {
		it, ok := x.recv(in, em)
		if !ok {
			break
		}
		size := countIn(em.c, it)
		wctx, bs := em.bt.arrive(ctx, it, size)
		em.inflight = it.rec
		err := s.Write(wctx, it.port, it.rec)
		em.inflight = nil
		if bs != nil {
			em.bt.end(bs, err, x.failure(err))
		}
		it.rec.Release()
		if err != nil {
			return err
		}
	}
	if err := x.runCtx.Err(); err != nil {
		return err
	}
	return s.Close(ctx)
}

// finish runs once every instance has returned: it releases what is left on
// the edges, commits or aborts the sinks, and freezes the summary.
func (x *Execution) finish() {
	for _, in := range x.inboxes {
		if in == nil {
			continue
		}
		for _, ch := range in.lanes {
			for {
				select {
				case it, ok := <-ch:
					if ok {
						if it.edge >= 0 && x.tel != nil && x.tel.m != nil {
							x.tel.m.edges[it.edge].depth.Add(-1)
						}
						it.rec.Release()
						continue
					}
				default:
				}
				break
			}
		}
	}
	x.errMu.Lock()
	if x.err == nil && x.ctx.Err() != nil {
		x.err = fmt.Errorf("engine: run cancelled: %w", context.Cause(x.ctx))
	}
	err := x.err
	x.errMu.Unlock()
	if x.opts.BeforeCommit != nil {
		x.opts.BeforeCommit()
	}
	if err == nil {
		err = commitSinks(x.sinks, x.sinkNames())
	} else {
		for _, s := range x.sinks {
			s.Abort()
		}
	}
	committed := err == nil
	for _, e := range x.ends {
		if eerr := e.RunEnded(committed); eerr != nil && committed {
			err = errors.Join(err, fmt.Errorf("engine: %q after the run's output was committed: %w", e.node, eerr))
		}
	}
	x.errMu.Lock()
	x.err = err
	x.errMu.Unlock()
	x.cancel()
	x.elapsed = time.Since(x.start)
	x.summary = x.snapshot(x.elapsed)
	if err != nil {
		x.summary.Err = err.Error()
	}
	x.tel.stopMetrics() // before the pools close: the gauges read them
	if x.mem != nil {
		x.mem.finish(&x.summary, x.opts)
	}
	if x.opts.Finish != nil {
		x.opts.Finish(&x.summary)
	}
	x.tel.endRun(&x.summary, err)
	close(x.done)
}

// Wait waits for the run to end and returns its summary and error.
func (x *Execution) Wait() (Summary, error) {
	<-x.done
	return x.summary, x.err
}

// Done is closed when the run has ended.
func (x *Execution) Done() <-chan struct{} { return x.done }

// Snapshot returns the figures so far; safe to call while running.
func (x *Execution) Snapshot() Summary {
	select {
	case <-x.done:
		return x.summary
	default:
	}
	return x.snapshot(time.Since(x.start))
}

func (x *Execution) snapshot(elapsed time.Duration) Summary {
	s := Summary{Pipeline: x.plan.Name, Elapsed: elapsed}
	for i, n := range x.plan.nodes {
		s.Ops = append(s.Ops, x.stats[i].snapshot(n))
	}
	return s
}

// emitter is an instance's Emitter: it counts, then fans a batch out to every
// consumer, retaining once per extra consumer.
type emitter struct {
	ctx     context.Context
	outs    []outEdge
	c       *instCounters // this instance's
	blocked int64         // ns
	idle    int64

	m  *runMetrics // nil without metrics
	bt *batchTel   // nil without batch tracing

	track  bool   // transforms: count bytes shared with the input
	inBufs bufSet // the current input's buffers

	buffering bool // ordered parallel: hold batches until our turn
	held      []heldBatch

	inflight arrow.RecordBatch // the batch borrowed by the current Process or Write

	lane  int // the lane of its inbox the instance reads: its index
	lanes int // Spec.Exchange: the lanes of its consumers' inboxes
	rr    int // the last lane a batch went to, when any would do
}

// Lanes is the number of lanes of an exchange's consumers (LaneEmitter).
func (e *emitter) Lanes() int { return max(e.lanes, 1) }

// EmitLane is Emit into lane k of every consumer (LaneEmitter).
func (e *emitter) EmitLane(k int, b arrow.RecordBatch) error {
	if b == nil {
		return nil
	}
	if k < 0 || k >= e.Lanes() {
		b.Release()
		return fmt.Errorf("engine: lane %d of %d (a bug in the exchange)", k, e.Lanes())
	}
	if e.buffering {
		b.Release()
		return errors.New("engine: an exchange emits by lane and keeps no order (a bug: its node is ordered)")
	}
	size := e.count(b)
	return e.sendTo(b, size, e.traceCarrier(b, size), 0, k)
}

type heldBatch struct {
	rec  arrow.RecordBatch
	size int64
	sc   *trace.SpanContext
	port int // the output port
}

func (e *emitter) Emit(b arrow.RecordBatch) error {
	if b == nil {
		return nil
	}
	size := e.count(b)
	sc := e.traceCarrier(b, size)
	if e.buffering {
		e.held = append(e.held, heldBatch{b, size, sc, 0})
		return nil
	}
	return e.send(b, size, sc)
}

// EmitPort is Emit to output port k (PortEmitter).
func (e *emitter) EmitPort(k int, b arrow.RecordBatch) error {
	if k == 0 {
		return e.Emit(b)
	}
	if b == nil {
		return nil
	}
	if !e.PortUsed(k) {
		b.Release()
		return nil
	}
	size := e.count(b)
	sc := e.traceCarrier(b, size)
	if e.buffering {
		e.held = append(e.held, heldBatch{b, size, sc, k})
		return nil
	}
	err := e.sendTo(b, size, sc, k, -1)
	if errors.Is(err, ErrStop) {
		return nil // the readers of port k want no more; the main output may
	}
	return err
}

// PortUsed says whether a node reads output port k (PortEmitter).
func (e *emitter) PortUsed(k int) bool {
	for _, o := range e.outs {
		if o.from == k && !o.in.isDetached() {
			return true
		}
	}
	return false
}

// count counts an emitted batch and returns its size.
func (e *emitter) count(b arrow.RecordBatch) int64 {
	size := BatchBytes(b)
	bump(&e.c.rowsOut, b.NumRows())
	bump(&e.c.batchesOut, 1)
	bump(&e.c.bytesOut, size)
	if e.track && len(e.inBufs.ptrs) > 0 {
		bump(&e.c.ref, e.inBufs.sharedBytes(b))
	}
	return size
}

// traceCarrier is the span context a batch carries, when batches are
// traced: a source's new batch span, or the span of the batch in process.
func (e *emitter) traceCarrier(b arrow.RecordBatch, size int64) *trace.SpanContext {
	if e.bt == nil {
		return nil
	}
	if e.bt.source {
		e.bt.seq++
		return e.bt.sourceBatch(b, size)
	}
	return e.bt.cur
}

// took accounts for an item taken off an edge.
func (e *emitter) took(it item, ok bool) {
	if ok && e.m != nil && it.edge >= 0 {
		e.m.received(it.edge, it.at)
	}
}

func (e *emitter) flush() error {
	var err error
	for i, h := range e.held {
		if err != nil {
			h.rec.Release()
		} else if h.port > 0 {
			if perr := e.sendTo(h.rec, h.size, h.sc, h.port, -1); !errors.Is(perr, ErrStop) {
				err = perr
			}
		} else {
			err = e.send(h.rec, h.size, h.sc)
		}
		e.held[i] = heldBatch{}
	}
	e.held = e.held[:0]
	return err
}

func (e *emitter) dropBuffered() {
	for i, h := range e.held {
		h.rec.Release()
		e.held[i] = heldBatch{}
	}
	e.held = e.held[:0]
}

func (e *emitter) send(b arrow.RecordBatch, size int64, sc *trace.SpanContext) error {
	return e.sendTo(b, size, sc, 0, -1)
}

// sendTo sends b to every reader of output port port that still wants
// input: into lane lane of its inbox, or, with lane < 0, into whichever
// lane has room (round robin among full ones). It returns ErrStop when
// no reader of the port wants more.
func (e *emitter) sendTo(b arrow.RecordBatch, size int64, sc *trace.SpanContext, port, lane int) error {
	var liveBuf [8]outEdge
	live := liveBuf[:0]
	readers := 0
	for _, o := range e.outs {
		if o.from == port {
			readers++
			if !o.in.isDetached() {
				live = append(live, o)
			}
		}
	}
	if len(live) == 0 {
		b.Release()
		if readers == 0 {
			return nil // nobody reads this port (only another one)
		}
		return ErrStop
	}
	if len(live) > 1 {
		settleBatch(b)
	}
	for range len(live) - 1 {
		b.Retain() // fan-out: one reference per consumer, never a copy
	}
	for i, o := range live {
		if o.in.ends != nil {
			o.in.ends[o.port].sent.Add(1) // before the batch can be taken
		}
		it := item{port: o.port, rec: b, size: size, edge: o.edge, sc: sc}
		if e.m != nil && o.edge >= 0 {
			it.at = e.m.sent(o.edge)
		}
		var ch chan item
		switch n := len(o.in.lanes); {
		case n == 1:
			ch = o.in.lanes[0]
		case lane >= 0:
			ch = o.in.lanes[lane%n]
		default:
			// Any lane will do: the first with room from the next in
			// turn, else wait on that one.
			e.rr++
			start, sent := e.rr%n, false
			for k := 0; k < n && !sent; k++ {
				select {
				case o.in.lanes[(start+k)%n] <- it:
					sent = true
				default:
				}
			}
			if sent {
				continue
			}
			ch = o.in.lanes[start]
		}
		select {
		case ch <- it:
			continue
		default:
		}
		t := time.Now()
		sent := false
		for range spinSend { // spin, then park (see spinRecv)
			runtime.Gosched()
			select {
			case ch <- it:
				sent = true
			default:
				continue
			}
			break
		}
		if sent {
			e.blocked += int64(time.Since(t))
			continue
		}
		select {
		case ch <- it:
		case <-o.in.detached:
			e.unsent(o)
			b.Release()
		case <-e.ctx.Done():
			e.unsent(o)
			e.blocked += int64(time.Since(t))
			for range len(live) - i {
				b.Release()
			}
			return e.ctx.Err()
		}
		e.blocked += int64(time.Since(t))
	}
	for _, o := range e.outs {
		if o.from == port && !o.in.isDetached() {
			return nil
		}
	}
	return ErrStop
}

// unsent takes back the queue-depth count of a batch that never entered o.
func (e *emitter) unsent(o outEdge) {
	if e.m != nil && o.edge >= 0 {
		e.m.edges[o.edge].depth.Add(-1)
	}
}

// settleBatch does, before a batch goes to several consumers, the
// writes arrow-go makes lazily on first read, so that the consumers only
// read. Arrow counts a slice's nulls on its first NullN and stores the
// count in the ArrayData the consumers share; a dictionary array makes its
// values array on the first Dictionary() and keeps it in the array object
// they share. Two consumers doing either at once would race to store it;
// done here, in the producer's goroutine, it is only read after.
func settleBatch(b arrow.RecordBatch) { Settle(b.Columns()...) }

// Settle does what the fan-out does before a batch reaches several
// consumers (settleBatch) for arrays an operator shares between its
// own instances, such as a join's build table: called before the sharing,
// the instances only read.
func Settle(arrays ...arrow.Array) {
	for _, a := range arrays {
		settleArray(a)
	}
}

func settleArray(a arrow.Array) {
	a.NullN()
	// The array objects consumers reach through the shared one are settled
	// themselves: a dictionary's values and indices, a struct's fields, a
	// list's values.
	switch t := a.(type) {
	case *array.Dictionary:
		t.Indices().NullN()
		settleArray(t.Dictionary())
		return
	case *array.Struct:
		for i := range t.NumField() {
			settleArray(t.Field(i))
		}
		return
	case array.ListLike:
		settleArray(t.ListValues())
		return
	}
	d := a.Data()
	for _, cd := range d.Children() {
		c := array.MakeFromData(cd)
		settleArray(c)
		c.Release()
	}
	if d.DataType().ID() == arrow.DICTIONARY {
		c := array.MakeFromData(d.Dictionary())
		settleArray(c)
		c.Release()
	}
}
