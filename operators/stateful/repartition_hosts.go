package stateful

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/cespare/xxhash/v2"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/arrowcheck"
	"github.com/zflowdev/zflow/io/stream"
)

// A repartition across hosts in a sharded run (the workers of a cluster
// run, engine.Shard with Peers) is an exchange between processes before
// it is one between instances. Each row goes to the shard its key hashes
// to — a hash every process computes alike (xxhash of the key's encoding,
// not the process's seeded table hash) — and, on that shard, to the
// instance its table hash picks, as a repartition on one host does. Rows
// of this shard's own keys never leave the process; the others travel
// over one zflow stream per pair of shards (credits, sequence numbers,
// trace carriers: io/stream), both directions at once.
//
// The instances of the node share the connections (hostExchange). A batch
// for another shard goes into that shard's send queue, which one goroutine
// writes to the stream; batches from the other shards arrive through one
// receive goroutine per stream into a shared queue, which the instances
// drain and route to their consumers. An instance waiting for room in a
// send queue keeps draining the receive queue, and so does one that has
// finished its input, until every other shard's stream has ended: two
// shards sending to each other can never both wait on a full queue.

// hostBatch is a batch crossing an exchange, with its trace carrier.
type hostBatch struct {
	rec     arrow.RecordBatch
	carrier [stream.CarrierSize]byte
}

// hostExchange is what the instances of a repartition across hosts share.
type hostExchange struct {
	f          *repartitionFactory
	ic         *engine.InstanceContext // the first instance's: its allocator receives
	self, n    int
	connected  chan struct{} // closed when the streams are made (or failed)
	connectErr error

	ctx    context.Context // the goroutines'; cancelled at the first failure or at teardown
	cancel context.CancelFunc
	failMu sync.Mutex
	failed error

	sendq    []chan hostBatch // by shard; nil at self
	recvq    chan hostBatch
	sending  atomic.Int32 // instances that may still send
	finished atomic.Int32 // instances whose Finish succeeded
	live     atomic.Int32 // instances not yet released
	sendDone chan struct{}
	wg       sync.WaitGroup

	sentBytes, recvBytes     atomic.Int64
	sentBatches, recvBatches atomic.Int64
}

func newHostExchange(f *repartitionFactory, ic *engine.InstanceContext) *hostExchange {
	x := &hostExchange{f: f, ic: ic, self: ic.Settings.Shard.Index, n: ic.Settings.Shard.Count,
		sendDone: make(chan struct{}), connected: make(chan struct{})}
	x.sending.Store(int32(max(ic.Count, 1)))
	x.live.Store(int32(max(ic.Count, 1)))
	x.ctx, x.cancel = context.WithCancel(context.Background())
	// The streams are made as the run starts, whenever the first batch
	// comes: the workers start together, but one may reach the exchange
	// much later than another (a filter that drops everything it reads
	// first, skewed data, a slow operator before it).
	go func() {
		x.connectErr = x.dial(x.ctx)
		close(x.connected)
	}()
	return x
}

// fail records the exchange's first failure and stops its goroutines.
func (x *hostExchange) fail(err error) {
	x.failMu.Lock()
	if x.failed == nil {
		x.failed = err
	}
	x.failMu.Unlock()
	x.cancel()
}

func (x *hostExchange) err() error {
	x.failMu.Lock()
	defer x.failMu.Unlock()
	return x.failed
}

// connect makes the exchange's streams (once, for every instance): a
// sender to every other shard and a receiver from each, their handshakes
// all at once (each side's sender waits for the other's receiver).
func (x *hostExchange) connect(ctx context.Context) error {
	select {
	case <-x.connected:
		return x.connectErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (x *hostExchange) dial(ctx context.Context) error {
	outs, ins, err := x.ic.Settings.Shard.Peers.Connect(ctx, x.ic.Node)
	if err != nil {
		return fmt.Errorf("repartition across hosts: %w", err)
	}
	if len(outs) != x.n || len(ins) != x.n {
		return fmt.Errorf("repartition across hosts: %d and %d connections for %d shards (a bug in the cluster's peers)", len(outs), len(ins), x.n)
	}
	senders := make([]*stream.Sender, x.n)
	receivers := make([]*stream.Receiver, x.n)
	errs := make([]error, 2*x.n)
	var hs sync.WaitGroup
	// Every handshake is bounded, and the first to fail ends the others
	// (a peer that gave up never says hello).
	hctx, hcancel := context.WithTimeout(ctx, handshakeWait)
	defer hcancel()
	failed := func(i int, err error) {
		errs[i] = err
		hcancel()
	}
	for j := range x.n {
		if j == x.self {
			continue
		}
		hs.Add(2)
		go func() {
			defer hs.Done()
			// The end of the stream waits for the receiver to have passed
			// on everything before it, which a slow consumer there may
			// take long over: the run's failure, not a timeout, ends it.
			s, err := stream.NewSender(hctx, outs[j], x.f.schema, stream.SendOptions{Alloc: x.ic.Alloc, EndTimeout: 24 * time.Hour})
			if err != nil {
				failed(2*j, fmt.Errorf("to shard %d: %w", j, err))
				outs[j].Close()
				return
			}
			senders[j] = s
		}()
		go func() {
			defer hs.Done()
			r, err := stream.NewReceiver(hctx, ins[j], stream.RecvOptions{Alloc: x.ic.Alloc})
			if err == nil {
				err = sameColumns(x.f.schema, r.Schema())
				if err == nil {
					err = r.Start()
				}
				if err != nil {
					r.Fail(err)
				}
			} else {
				ins[j].Close()
			}
			if err != nil {
				failed(2*j+1, fmt.Errorf("from shard %d: %w", j, err))
				return
			}
			receivers[j] = r
		}()
	}
	hs.Wait()
	if err := errors.Join(errs...); err != nil {
		for j := range x.n {
			if senders[j] != nil {
				senders[j].Abort(err)
			}
			if receivers[j] != nil {
				receivers[j].Fail(err)
			}
		}
		return fmt.Errorf("repartition across hosts: %w", err)
	}
	x.sendq = make([]chan hostBatch, x.n)
	x.recvq = make(chan hostBatch, 2*x.n)
	var sendWG, recvWG sync.WaitGroup
	for j := range x.n {
		if j == x.self {
			continue
		}
		x.sendq[j] = make(chan hostBatch, 4)
		sendWG.Add(1)
		recvWG.Add(1)
		x.wg.Add(2)
		go func() { defer x.wg.Done(); defer sendWG.Done(); x.send(j, senders[j]) }()
		go func() { defer x.wg.Done(); defer recvWG.Done(); x.receive(j, receivers[j]) }()
	}
	x.wg.Add(2)
	go func() { defer x.wg.Done(); recvWG.Wait(); close(x.recvq) }()
	go func() { defer x.wg.Done(); sendWG.Wait(); close(x.sendDone) }()
	return nil
}

// send writes shard j's queue to its stream and ends the stream when the
// queue is closed.
func (x *hostExchange) send(j int, s *stream.Sender) {
	defer func() {
		st := s.Stats()
		x.sentBytes.Add(st.Bytes)
		x.sentBatches.Add(st.Batches)
	}()
	for hb := range x.sendq[j] {
		if x.ctx.Err() != nil {
			hb.rec.Release()
			continue // drain: the instances stop sending once they see the failure
		}
		err := s.Write(x.ctx, hb.rec, hb.carrier)
		hb.rec.Release()
		if err != nil {
			x.fail(fmt.Errorf("repartition across hosts: to shard %d: %w", j, err))
			s.Abort(err)
		}
	}
	if err := x.err(); err != nil {
		s.Abort(err)
		return
	}
	if err := s.Close(x.ctx); err != nil {
		x.fail(fmt.Errorf("repartition across hosts: ending the stream to shard %d: %w", j, err))
	}
}

// receive reads shard j's stream into the receive queue.
func (x *hostExchange) receive(j int, r *stream.Receiver) {
	defer func() {
		st := r.Stats()
		x.recvBytes.Add(st.Bytes)
		x.recvBatches.Add(st.Batches)
	}()
	for {
		rec, carrier, err := r.Next(x.ctx)
		if err == io.EOF {
			r.Close()
			return
		}
		if err == nil {
			if err = arrowcheck.RecordFull(rec); err != nil {
				rec.Release()
				err = fmt.Errorf("batch %d is malformed: %w", r.Stats().Batches, err)
			}
		}
		if err != nil {
			if x.ctx.Err() == nil {
				x.fail(fmt.Errorf("repartition across hosts: from shard %d: %w", j, err))
			}
			r.Fail(x.err())
			return
		}
		select {
		case x.recvq <- hostBatch{rec, carrier}:
		case <-x.ctx.Done():
			rec.Release()
			r.Fail(x.err())
			return
		}
		if err := r.Done(); err != nil {
			x.fail(fmt.Errorf("repartition across hosts: from shard %d: %w", j, err))
			r.Fail(x.err())
			return
		}
	}
}

// handshakeWait bounds the start of the exchange's streams.
const handshakeWait = 2 * time.Minute

// sameColumns checks that a peer's stream has the exchange's columns.
func sameColumns(want, got *arrow.Schema) error {
	if want.NumFields() != got.NumFields() {
		return fmt.Errorf("the stream has %d columns, this exchange %d (workers compiled different pipelines?)", got.NumFields(), want.NumFields())
	}
	for i, f := range want.Fields() {
		g := got.Field(i)
		if f.Name != g.Name || !arrow.TypeEqual(f.Type, g.Type) {
			return fmt.Errorf("column %d is %s %s in the stream, %s %s here (workers compiled different pipelines?)", i, g.Name, g.Type, f.Name, f.Type)
		}
	}
	return nil
}

// acrossHosts routes in: its rows of this shard to this process's
// consumers, the others into their shards' send queues.
func (r *repartition) acrossHosts(ctx context.Context, in arrow.RecordBatch, out engine.Emitter) error {
	x := r.x
	if err := x.connect(ctx); err != nil {
		return err
	}
	n := int(in.NumRows())
	if r.f.enc == nil {
		k := (r.ic.Index + r.rrHost) % x.n
		r.rrHost++
		in.Retain()
		if k == x.self {
			defer in.Release()
			if err := r.route(ctx, in, out); err != nil {
				return err
			}
		} else if err := r.enqueue(ctx, k, in, out); err != nil {
			return err
		}
		return r.drain(ctx, out, false)
	}
	// One pass sorts every row out: lanes 0…L-1 are this process's
	// consumers' (the rows of this shard's keys, by the table hash, as
	// route would), lanes L+j go to shard j.
	le, ok := out.(engine.LaneEmitter)
	local := 1
	if ok {
		local = le.Lanes()
	}
	if err := r.f.enc.Encode(pick(in, r.f.keys), &r.rows); err != nil {
		return fmt.Errorf("repartition: %w", err)
	}
	r.hlane = grow(r.hlane, n)
	for i := range n {
		h := HostLane(xxhash.Sum64(r.rows.Data[r.rows.Offs[i]:r.rows.Offs[i+1]]), x.n)
		if h == x.self {
			r.hlane[i] = int32(Lane(r.rows.Hash[i], local))
		} else {
			r.hlane[i] = int32(local + h)
		}
	}
	emit := func(k int, b arrow.RecordBatch) error {
		switch {
		case k >= local:
			return r.enqueue(ctx, k-local, b, out)
		case ok:
			return le.EmitLane(k, b)
		default:
			return out.Emit(b)
		}
	}
	if err := r.split(ctx, in, r.hlane[:n], local+x.n, &r.hidx, emit); err != nil {
		return err
	}
	return r.drain(ctx, out, false)
}

// HostLane maps a key's process-independent hash to one of n shards.
func HostLane(hash uint64, n int) int {
	return int(uint64(uint32(hash>>32)) * uint64(n) >> 32)
}

// enqueue puts b (owned) into shard k's send queue, routing what arrives
// from the other shards while it waits for room.
func (r *repartition) enqueue(ctx context.Context, k int, b arrow.RecordBatch, out engine.Emitter) error {
	x := r.x
	hb := hostBatch{b, [stream.CarrierSize]byte(engine.InjectBatchTrace(ctx))}
	for {
		var rq chan hostBatch
		if !r.recvEnded {
			rq = x.recvq
		}
		select {
		case x.sendq[k] <- hb:
			return nil
		case got, ok := <-rq:
			if !ok {
				r.recvEnded = true
				continue
			}
			if err := r.routeReceived(ctx, got, out); err != nil {
				b.Release()
				return err
			}
		case <-x.ctx.Done():
			b.Release()
			return x.failure()
		case <-ctx.Done():
			b.Release()
			return ctx.Err()
		}
	}
}

// failure is the exchange's error once its goroutines stopped.
func (x *hostExchange) failure() error {
	if err := x.err(); err != nil {
		return err
	}
	return errors.New("repartition across hosts: the exchange was stopped")
}

// routeReceived routes a batch from another shard. Once this process's
// consumers want no more (ErrStop: a limit reached), what arrives is
// dropped, but still read to the end of every stream, so that the other
// shards end theirs cleanly.
func (r *repartition) routeReceived(ctx context.Context, hb hostBatch, out engine.Emitter) error {
	defer hb.rec.Release()
	if r.stopped {
		return nil
	}
	err := r.route(ctx, hb.rec, out)
	if errors.Is(err, engine.ErrStop) {
		r.stopped = true
		return nil
	}
	return err
}

// drain routes what has arrived from the other shards: what is there now,
// or, with all, everything until their streams have ended.
func (r *repartition) drain(ctx context.Context, out engine.Emitter, all bool) error {
	x := r.x
	for !r.recvEnded {
		var got hostBatch
		var ok bool
		if all {
			select {
			case got, ok = <-x.recvq:
			case <-x.ctx.Done():
				return x.failure()
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			select {
			case got, ok = <-x.recvq:
			default:
				return nil
			}
		}
		if !ok {
			r.recvEnded = true
			break
		}
		if err := r.routeReceived(ctx, got, out); err != nil {
			return err
		}
	}
	return nil
}

// Finish ends this instance's sending (the last instance to finish ends
// the streams) and routes what the other shards send until they end.
func (r *repartition) Finish(ctx context.Context, out engine.Emitter) error {
	x := r.x
	if x == nil {
		return nil
	}
	if err := x.connect(ctx); err != nil {
		return err
	}
	if x.sending.Add(-1) == 0 {
		for _, q := range x.sendq {
			if q != nil {
				close(q)
			}
		}
	}
	if err := r.drain(ctx, out, true); err != nil {
		return err
	}
	select {
	case <-x.sendDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := x.err(); err != nil {
		return err
	}
	x.finished.Add(1)
	return nil
}

// Release lets go of the exchange when its last instance is done: stops
// its goroutines (at once if the run failed), drops what they still held
// and accounts for the bytes that crossed.
func (r *repartition) Release() {
	x := r.x
	if x == nil || x.live.Add(-1) != 0 {
		return
	}
	// Unless every instance finished (its streams ended and the others'
	// were read to their end), the exchange stops at once: its receivers
	// would otherwise wait for room nobody makes, and its peers for
	// credit.
	if x.finished.Load() < int32(max(x.ic.Count, 1)) || x.err() != nil {
		x.fail(errors.New("the run failed or was cancelled"))
	}
	<-x.connected // the streams are made or given up (a failure above cancels their making)
	if x.sendq != nil {
		if x.sending.Load() > 0 {
			for _, q := range x.sendq {
				if q != nil {
					close(q)
				}
			}
		}
		x.wg.Wait()
		for hb := range x.recvq {
			hb.rec.Release()
		}
	}
	x.cancel()
	ic := x.ic
	ic.Ledger.Copied("exchange send (kernel copy)", x.sentBytes.Load())
	ic.Ledger.Copied("exchange receive (kernel copy)", x.recvBytes.Load())
	if ic.Logger != nil {
		ic.Logger.Info("repartition across hosts", "node", ic.Node, "shard", x.self, "shards", x.n,
			"sent_batches", x.sentBatches.Load(), "sent_bytes", x.sentBytes.Load(),
			"received_batches", x.recvBatches.Load(), "received_bytes", x.recvBytes.Load())
	}
}
