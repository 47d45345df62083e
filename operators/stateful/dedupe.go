package stateful

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/dgraph-io/ristretto/v2"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators/expr"
)

// DedupeConfig is the config of dedupe.
type DedupeConfig struct {
	By       []string      `zflow:"by" required:"true" doc:"the key columns: a row whose key was seen before is dropped" example:"[event_id]"`
	MaxBytes engine.Size   `zflow:"max_bytes" doc:"memory for the keys remembered, charged to the operator's budget when the run starts; when it is full the cache keeps the keys seen most often (TinyLFU admission) and forgets others, so a duplicate of a forgotten key passes"`
	TTL      time.Duration `zflow:"ttl" doc:"forget a key this long after it was first seen (0: only when the cache needs room); a duplicate arriving later passes"`
}

// defaultDedupeBytes is the cache's default size: about a million keys.
const defaultDedupeBytes = 64 << 20

// dedupeItemBytes is what the cache holds per key besides its cost: its
// two hashes, the expiration, the value and the map entry (ristretto
// stores a key's hashes, never the key).
const dedupeItemBytes = 64

// DedupeSpec declares dedupe.
func DedupeSpec() engine.Spec {
	return engine.Spec{
		Name: "dedupe", Kind: engine.KindTransform, MinInputs: 1, MaxInputs: 1,
		Summary: "drop the rows whose key was seen before, with bounded memory",
		Doc: "A streaming dedupe: rows pass in input order, each the first of its key (by:) as far as the operator remembers. " +
			"The keys seen are kept in a ristretto cache of max_bytes (cost = bytes, admission by frequency: when it is full, a new key is kept only if it is seen more often than the key it would evict), " +
			"so memory never grows past max_bytes, and a duplicate of a key the cache forgot (evicted, not admitted, or older than ttl) passes: the summary's log line says how many keys were evicted and rejected. " +
			"Duplicates within one batch are always dropped. The cache stores two 64-bit hashes of each key, never the key, so two different keys are taken for one with a probability of about n²/2¹²⁹ for n keys. " +
			"For exact distinct rows over all the input, use aggregate with group_by and no aggregates, which spills instead of forgetting. " +
			"A batch whose every row passes is re-emitted by reference; other batches are compacted (\"dedupe compact\" on the copy ledger).",
		Example:   `{type: dedupe, inputs: [events], by: [event_id], max_bytes: 256MiB, ttl: 10m}`,
		NewConfig: func() any { return &DedupeConfig{MaxBytes: defaultDedupeBytes} },
		Build:     buildDedupe,
	}
}

func init() { engine.Register(DedupeSpec()) }

type dedupeFactory struct {
	cfg    DedupeConfig
	schema *arrow.Schema
	keys   []int
	enc    *KeyEncoder
}

func buildDedupe(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*DedupeConfig)
	in := bc.Inputs[0]
	var errs []error
	if len(cfg.By) == 0 {
		errs = append(errs, engine.Errf("by", "name at least one key column"))
	}
	keys, kerrs := columnsByName(in, "by", cfg.By)
	errs = append(errs, kerrs...)
	if cfg.MaxBytes < 1<<20 {
		errs = append(errs, engine.Errf("max_bytes", "want at least 1 MiB, got %d bytes", int64(cfg.MaxBytes)))
	}
	if cfg.TTL < 0 {
		errs = append(errs, engine.Errf("ttl", "must be 0 (no expiry) or positive, got %v", cfg.TTL))
	}
	if len(errs) > 0 {
		return nil, engine.Errors(errs)
	}
	enc, err := NewKeyEncoder(keyTypes(in, keys))
	if err != nil {
		return nil, engine.Errf("by", "%v", err)
	}
	return &dedupeFactory{cfg: cfg, schema: in, keys: keys, enc: enc}, nil
}

func (f *dedupeFactory) Schema() *arrow.Schema { return f.schema }

func (f *dedupeFactory) Describe() string {
	s := fmt.Sprintf("by: %s; remembers keys in %s", strings.Join(f.cfg.By, ", "), engine.Size(f.cfg.MaxBytes))
	if f.cfg.TTL > 0 {
		s += fmt.Sprintf(" for %v", f.cfg.TTL)
	}
	return s
}

func (f *dedupeFactory) New(ic *engine.InstanceContext) (any, error) {
	maxCost := int64(f.cfg.MaxBytes)
	// Ten counters per key it can hold, about 3 bytes each (ristretto's
	// advice): charged with the cache's own bytes, before the run starts.
	counters := max(maxCost/dedupeItemBytes*10, 1024)
	reserved := maxCost + counters*3
	if ic.Budget != nil {
		if err := ic.Budget.Reserve(reserved); err != nil {
			return nil, fmt.Errorf("dedupe: its key cache (max_bytes %s and %s of counters) does not fit the memory budget: %w; lower max_bytes or raise the budget",
				engine.Size(maxCost), engine.Size(counters*3), err)
		}
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, struct{}]{
		NumCounters: counters, MaxCost: maxCost, BufferItems: 64, Metrics: true,
	})
	if err != nil {
		if ic.Budget != nil {
			ic.Budget.Unreserve(reserved)
		}
		return nil, fmt.Errorf("dedupe: %w", err)
	}
	return &dedupe{f: f, ic: ic, cache: cache, reserved: reserved, batch: NewKeyTable(nil), mem: ic.Alloc}, nil
}

type dedupe struct {
	f        *dedupeFactory
	ic       *engine.InstanceContext
	cache    *ristretto.Cache[string, struct{}]
	reserved int64
	mem      memory.Allocator

	rows    KeyRows
	batch   *KeyTable // the keys of the current batch, for duplicates inside it
	ids     []uint32
	keep    []int32
	pending int // sets since the last Wait
	dropped int64
}

// setsPerWait bounds the sets between two cache.Wait calls: ristretto
// applies sets asynchronously through a buffer that drops what overflows,
// and a dropped set is a key forgotten.
const setsPerWait = 4096

// Process passes the rows whose key is new.
func (d *dedupe) Process(ctx context.Context, _ int, in arrow.RecordBatch, out engine.Emitter) error {
	n := int(in.NumRows())
	if n == 0 {
		return nil
	}
	if err := d.f.enc.Encode(pick(in, d.f.keys), &d.rows); err != nil {
		return fmt.Errorf("dedupe: %w", err)
	}
	d.batch.Release()
	d.ids = grow(d.ids, n)
	if _, err := d.batch.FindOrInsert(&d.rows, nil, d.ids); err != nil {
		return fmt.Errorf("dedupe: %w", err)
	}
	d.keep = d.keep[:0]
	next := uint32(0) // ids are dense in first-seen order: a row is its key's first when its id is next
	for i := range n {
		if d.ids[i] != next {
			continue
		}
		next++
		k := d.rows.Row(i)
		key := unsafe.String(unsafe.SliceData(k), len(k)) // ristretto hashes it at once and keeps only the hashes
		if _, seen := d.cache.Get(key); seen {
			continue
		}
		if d.f.cfg.TTL > 0 {
			d.cache.SetWithTTL(key, struct{}{}, int64(len(k)), d.f.cfg.TTL)
		} else {
			d.cache.Set(key, struct{}{}, int64(len(k)))
		}
		d.keep = append(d.keep, int32(i))
		if d.pending++; d.pending >= setsPerWait {
			d.cache.Wait()
			d.pending = 0
		}
	}
	// The keys kept must be visible to the next batch's Gets.
	d.cache.Wait()
	d.pending = 0
	d.dropped += int64(n - len(d.keep))
	switch len(d.keep) {
	case 0:
		return nil
	case n:
		in.Retain()
		return out.Emit(in)
	}
	b, err := expr.Gather(ctx, d.mem, in, d.keep)
	if err != nil {
		return fmt.Errorf("dedupe: %w", err)
	}
	d.ic.Ledger.Copied("dedupe compact", expr.GatheredBytes(b))
	return out.Emit(b)
}

// Finish logs what the cache did.
func (d *dedupe) Finish(ctx context.Context, out engine.Emitter) error {
	if m := d.cache.Metrics; m != nil && d.ic.Logger != nil {
		d.ic.Logger.Info("dedupe: done", "node", d.ic.Node, "rows_dropped", d.dropped,
			"keys_added", m.KeysAdded(), "keys_evicted", m.KeysEvicted(), "keys_rejected", m.SetsRejected(), "sets_dropped", m.SetsDropped())
	}
	return nil
}

// Release closes the cache and gives its memory back to the budget.
func (d *dedupe) Release() {
	if d.cache != nil {
		d.cache.Close()
		d.cache = nil
		if d.ic.Budget != nil {
			d.ic.Budget.Unreserve(d.reserved)
		}
	}
	d.batch.Release()
}
