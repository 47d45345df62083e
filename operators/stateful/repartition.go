package stateful

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators/expr"
)

// RepartitionConfig is the config of repartition.
type RepartitionConfig struct {
	By     []string `zflow:"by" doc:"the key columns: every row of one key goes to the same instance of the next operator (hash of the key's values; NULL is a value). Without by:, whole batches go to the instances in turn (round robin)" example:"[symbol]"`
	Across string   `zflow:"across" enum:"instances,hosts" doc:"instances (the default) routes rows among the parallel instances of this process; hosts routes them among the workers of a cluster run first (zflow run --cluster): each worker sends every other the rows whose key is theirs over the zflow stream protocol, so all the rows of one key meet on one worker, then among its instances. On one host, hosts is the same as instances"`
}

// RepartitionSpec declares repartition.
func RepartitionSpec() engine.Spec {
	return engine.Spec{
		Name: "repartition", Kind: engine.KindTransform, BatchLocal: true, Parallel: true, Unordered: true, Exchange: true, MinInputs: 1, MaxInputs: 1,
		Summary: "route rows to the parallel instances of the next operator: by a hash of keys, or round robin",
		Doc: "An exchange between the parallel instances of the operators around it. Each instance of the next operator reads a lane of its own: " +
			"with by:, lane k gets exactly the rows whose key hashes to k, so every row of one key reaches one instance (an operator keeping per-key state, " +
			"an aggregate grouping by these columns, a sink writing one file per instance, can rely on it); without by:, whole batches go to the lanes in turn. " +
			"Batches move by reference: a batch whose rows all belong to one lane, or fall into long runs of one lane (input clustered by the key), is passed " +
			"whole or as slices; only a batch whose rows must be sorted out is gathered, one new batch per lane (\"repartition gather\" on the copy ledger). " +
			"Rows keep their input order within a lane; there is no order across lanes. " +
			"When the next operator runs one instance, repartition passes batches on untouched. " +
			"With across: hosts, in a cluster run (zflow run --cluster), rows first go to the worker their key hashes to (a hash every process computes alike), " +
			"over one zflow stream per pair of workers (\"exchange send/receive (kernel copy)\" on the copy ledger); a worker's own rows never leave it. " +
			"All the rows of one key then meet on one worker, so an aggregate, distinct or dedupe by these keys runs on every worker (docs/cluster.md).",
		Example:   `{type: repartition, inputs: [trades], by: [symbol]}`,
		NewConfig: func() any { return &RepartitionConfig{Across: "instances"} },
		Build:     buildRepartition,
	}
}

func init() { engine.Register(RepartitionSpec()) }

type repartitionFactory struct {
	cfg    RepartitionConfig
	schema *arrow.Schema
	keys   []int
	enc    *KeyEncoder // nil: round robin
	hosts  bool        // across: hosts in a sharded run
}

func buildRepartition(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*RepartitionConfig)
	in := bc.Inputs[0]
	f := &repartitionFactory{cfg: cfg, schema: in}
	switch cfg.Across {
	case "instances":
	case "hosts":
		sh := bc.Settings.Shard
		if sh.Sharded() && sh.Peers == nil {
			return nil, engine.Errf("across", "this run is shard %d of %d but was given no connections to the other shards (a worker a cluster coordinator did not start)", sh.Index, sh.Count)
		}
		f.hosts = sh.Sharded()
	default:
		return nil, engine.Errf("across", "want instances or hosts, got %q", cfg.Across)
	}
	if len(cfg.By) == 0 {
		return f, nil
	}
	keys, errs := columnsByName(in, "by", cfg.By)
	if len(errs) > 0 {
		return nil, engine.Errors(errs)
	}
	enc, err := NewKeyEncoder(keyTypes(in, keys))
	if err != nil {
		return nil, engine.Errf("by", "%v", err)
	}
	f.keys, f.enc = keys, enc
	return f, nil
}

func (f *repartitionFactory) Schema() *arrow.Schema { return f.schema }

// ExchangeKeys is what the rows are hashed by (engine.ExchangeKeyer).
func (f *repartitionFactory) ExchangeKeys() []string { return f.cfg.By }

// InputColumns is what the consumers read and the keys (engine.ColumnUser);
// nil, all of them, when the consumers read every column.
func (f *repartitionFactory) InputColumns(_ int, out []string) []string {
	if out == nil {
		return nil
	}
	used := slices.Clone(out)
	for _, k := range f.cfg.By {
		if !slices.Contains(used, k) {
			used = append(used, k)
		}
	}
	return used
}

func (f *repartitionFactory) Describe() string {
	d := "hash by " + strings.Join(f.cfg.By, ", ")
	if f.enc == nil {
		d = "round robin: whole batches, by reference"
	}
	if f.cfg.Across == "hosts" {
		d += "; across hosts first"
	}
	return d
}

func (f *repartitionFactory) New(ic *engine.InstanceContext) (any, error) {
	r := &repartition{f: f, ic: ic, mem: ic.Alloc, next: ic.Index}
	if r.mem == nil {
		r.mem = memory.DefaultAllocator
	}
	if f.hosts {
		r.x = ic.Shared(func() any { return newHostExchange(f, ic) }).(*hostExchange)
	}
	return r, nil
}

type repartition struct {
	f    *repartitionFactory
	ic   *engine.InstanceContext
	mem  memory.Allocator
	next int // round robin: the lane of the next batch

	rows   KeyRows
	lane   []int32   // the lane of each row of the batch
	idx    [][]int32 // the rows of each lane
	splits int64     // batches sliced or gathered (tests)

	x         *hostExchange // across: hosts in a sharded run; nil otherwise
	hlane     []int32       // the shard of each row of the batch
	hidx      [][]int32     // the rows of each shard
	rrHost    int           // round robin: the shard of the next batch
	recvEnded bool          // every shard's stream to this one has ended
	stopped   bool          // the consumers want no more (ErrStop)
}

// minRun is the average run of rows of one lane at which a batch is
// emitted as slices, by reference, rather than gathered: a slice costs
// its consumer a batch's overhead, a gathered row a copy.
const minRun = 512

func (r *repartition) Process(ctx context.Context, _ int, in arrow.RecordBatch, out engine.Emitter) error {
	if in.NumRows() == 0 {
		return nil
	}
	if r.x != nil {
		return r.acrossHosts(ctx, in, out)
	}
	return r.route(ctx, in, out)
}

// route sends in to the lanes of this process's consumers.
func (r *repartition) route(ctx context.Context, in arrow.RecordBatch, out engine.Emitter) error {
	n := int(in.NumRows())
	le, ok := out.(engine.LaneEmitter)
	if !ok || le.Lanes() == 1 {
		in.Retain()
		return out.Emit(in)
	}
	lanes := le.Lanes()
	if r.f.enc == nil {
		k := r.next % lanes
		r.next = (k + 1) % lanes
		in.Retain()
		return le.EmitLane(k, in)
	}
	if err := r.f.enc.Encode(pick(in, r.f.keys), &r.rows); err != nil {
		return fmt.Errorf("repartition: %w", err)
	}
	r.lane = grow(r.lane, n)
	for i := range n {
		r.lane[i] = int32(Lane(r.rows.Hash[i], lanes))
	}
	return r.split(ctx, in, r.lane[:n], lanes, &r.idx, le.EmitLane)
}

// split emits the rows of in whose lane (lane[i]) is k as emit(k, …): the
// whole batch when all rows share a lane, slices of it when the lanes come
// in long runs, else one gathered batch per lane (a counted copy).
func (r *repartition) split(ctx context.Context, in arrow.RecordBatch, lane []int32, lanes int, idx *[][]int32, emit func(int, arrow.RecordBatch) error) error {
	n := len(lane)
	runs := 1
	for i := 1; i < n; i++ {
		if lane[i] != lane[i-1] {
			runs++
		}
	}
	if runs == 1 {
		in.Retain()
		return emit(int(lane[0]), in)
	}
	r.splits++
	if runs*minRun <= n {
		// Long runs: slices of the batch, by reference, in row order.
		for from := 0; from < n; {
			to := from + 1
			for to < n && lane[to] == lane[from] {
				to++
			}
			if err := emit(int(lane[from]), in.NewSlice(int64(from), int64(to))); err != nil {
				return err
			}
			from = to
		}
		return nil
	}
	if len(*idx) < lanes {
		*idx = make([][]int32, lanes)
	}
	ix := *idx
	for k := range lanes {
		ix[k] = ix[k][:0]
	}
	for i := range n {
		ix[lane[i]] = append(ix[lane[i]], int32(i))
	}
	for k := range lanes {
		if len(ix[k]) == 0 {
			continue
		}
		b, err := expr.Gather(ctx, r.mem, in, ix[k])
		if err != nil {
			return fmt.Errorf("repartition: %w", err)
		}
		r.ic.Ledger.Copied("repartition gather", expr.GatheredBytes(b))
		if err := emit(k, b); err != nil {
			return err
		}
	}
	return nil
}
