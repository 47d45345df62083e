package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.opentelemetry.io/otel/attribute"

	"github.com/zflowdev/zflow/buffers"
)

// Where a run's memory comes from. The engine, not the layers above it,
// turns Settings.Memory and each node's Memory into pools (buffers.Pool,
// made by a registered kind), gives every operator an account of its pool,
// and puts what the pools got in the summary: a pipeline built in Go and
// its YAML twin run on the same memory.
//
//   - The run's pool comes from Settings.Memory, unless RunOptions.Alloc is
//     set: the caller's allocator then becomes a pool of kind "caller" (with
//     the same per-operator accounting and hard budget). If the pool cannot
//     be made (no memory can be mapped at all) the run uses the Go heap and
//     logs why; an arena getting less than it asked for (no hugepages, a
//     missing node) is logged and reported by the pool itself.
//   - A node whose Memory names a Kind gets a pool of its own, made for the
//     run and closed after it; failing to make it fails the run, naming the
//     operator. A node whose Memory names no Kind allocates from the run's
//     pool under its own Budget.

// DefaultMemory is the memory of a pipeline that says nothing: a hugepage
// arena (falling back to transparent hugepages, then plain pages), unbound,
// prefaulted, no budget. Its fallbacks are logged at Info
// (QuietFallback): nobody asked for hugepages, so a machine without them
// reserved is not worth a warning on every run; the summary's memory line
// still says what the arena got.
func DefaultMemory() buffers.PoolConfig {
	return buffers.PoolConfig{Kind: "hugepage", Page: buffers.Page2MiB, Prefault: true, QuietFallback: true}
}

// poolUse is a pool in a run and who allocates from it.
type poolUse struct {
	pool buffers.Pool
	cfg  buffers.PoolConfig
	kind string // what the spans say: the kind, or "caller"
	own  bool   // a node's own pool
	ops  []string
}

// runMemory is a run's pools and each node's account.
type runMemory struct {
	run   *poolUse
	own   []*poolUse
	node  []*poolUse        // by plan node index
	accts []buffers.Account // by plan node index
}

// newRunMemory makes the run's pools. err is an *OpError naming the node
// whose own pool could not be made; the pools made so far are closed.
func newRunMemory(p *Plan, opts RunOptions) (*runMemory, error) {
	m := &runMemory{node: make([]*poolUse, len(p.nodes)), accts: make([]buffers.Account, len(p.nodes))}
	cfg := p.Settings.Memory
	if opts.Memory != nil {
		cfg = *opts.Memory
	}
	cfg.Logger = opts.Logger.With("pipeline", p.Name)
	var run buffers.Pool
	var err error
	kind := cfg.Kind
	switch {
	case opts.Alloc != nil:
		kind = "caller"
		run, err = buffers.NewHeapPool(kind, opts.Alloc, buffers.PoolConfig{Budget: cfg.Budget})
	default:
		run, err = buffers.NewPool(cfg)
		if err != nil {
			level := slog.LevelError
			if errors.Is(err, errors.ErrUnsupported) { // no arenas on this OS: expected, said once
				level = slog.LevelWarn
				if cfg.QuietFallback {
					level = slog.LevelInfo
				}
			}
			opts.Logger.Log(context.Background(), level, "memory: no "+cfg.Kind+" pool, batches use the Go heap: "+err.Error(), "pipeline", p.Name)
			kind = "heap"
			run, err = buffers.NewHeapPool(kind, memory.DefaultAllocator, buffers.PoolConfig{Budget: cfg.Budget})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("engine: memory: %w", err)
	}
	m.run = &poolUse{pool: run, cfg: cfg, kind: kind}
	for i, n := range p.nodes {
		use, limit := m.run, int64(0)
		if nm := n.Memory; nm != nil {
			limit = nm.Budget
			if nm.Kind != "" {
				c := *nm
				c.Logger = opts.Logger.With("pipeline", p.Name, "op", n.ID)
				pool, err := buffers.NewPool(c)
				if err != nil {
					m.close(opts)
					return nil, &OpError{Op: n.ID, Type: n.Spec.Name, Err: fmt.Errorf("memory: %w", err)}
				}
				use = &poolUse{pool: pool, cfg: c, kind: c.Kind, own: true}
				m.own = append(m.own, use)
				limit = 0 // the pool's budget is the node's
			}
		}
		m.node[i] = use
		m.accts[i] = use.pool.Account(n.ID, limit)
		use.ops = append(use.ops, n.ID)
	}
	return m, nil
}

// attributes are the run span's memory attributes: what the batches live
// in (the kind, heap, or caller) and the node asked.
func (m *runMemory) attributes() []attribute.KeyValue {
	node := buffers.NoNode
	if m.run.cfg.Bind && m.run.kind != "caller" && m.run.kind != "heap" {
		node = m.run.cfg.Node
	}
	return []attribute.KeyValue{AttrArenaKind.String(m.run.kind), AttrArenaNode.Int(node)}
}

// gauges observes the pools' usage for the metrics.
func (m *runMemory) gauges(o GaugeObserver) {
	for _, u := range append([]*poolUse{m.run}, m.own...) {
		var extra []attribute.KeyValue
		if u.own {
			extra = []attribute.KeyValue{AttrOperatorID.String(strings.Join(u.ops, ","))}
		}
		us := u.pool.Usage()
		for _, b := range us.MappedBy {
			o("zflow.arena.bytes_mapped", "By", "arena bytes mapped, by what the kernel gave", b.Bytes,
				append([]attribute.KeyValue{AttrArenaBacking.String(b.Backing)}, extra...)...)
		}
		o("zflow.arena.bytes_in_use", "By", "arena bytes allocated and not freed", us.InUse, extra...)
	}
}

// finish puts the pools' reports and each operator's figures in s, then
// closes the pools. A pool that cannot close (a batch outlived the run,
// held by the caller) stays mapped rather than pull memory from under it,
// and the reason is logged.
func (m *runMemory) finish(s *Summary, opts RunOptions) {
	rep := m.run.pool.Report()
	rep.Operators = slices.Clone(m.run.ops)
	s.Memory = &rep
	for _, u := range m.own {
		r := u.pool.Report()
		r.Operators = slices.Clone(u.ops)
		s.Pools = append(s.Pools, r)
	}
	for i := range s.Ops {
		a := m.accts[i]
		s.Ops[i].Memory = &OpMemory{Pool: m.node[i].kind, Own: m.node[i].own, Peak: a.Peak(), InUse: a.Used(), Limit: a.Limit()}
	}
	m.close(opts)
}

func (m *runMemory) close(opts RunOptions) {
	var errs []error
	for _, u := range append([]*poolUse{m.run}, m.own...) {
		if u == nil {
			continue
		}
		if err := u.pool.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		opts.Logger.Error(err.Error())
	}
}

// DescribeMemory renders a memory config for `zflow plan`.
func DescribeMemory(c buffers.PoolConfig) string {
	var b strings.Builder
	switch c.Kind {
	case "heap":
		b.WriteString("heap (the Go allocator, or the one passed to Run)")
	case "":
		b.WriteString("the run's pool")
		if c.Budget > 0 {
			b.WriteString(" under its own budget " + Size(c.Budget).String())
		}
		return b.String()
	default:
		b.WriteString("arena " + c.Kind)
		if c.Kind == "hugepage" {
			page := Size(c.Page)
			if page == 0 {
				page = buffers.Page2MiB
			}
			b.WriteString(" " + page.String() + " (falls back to thp, then plain pages)")
		}
		if c.Path != "" {
			b.WriteString(" at " + c.Path)
		}
		if c.Bind {
			fmt.Fprintf(&b, ", node %d", c.Node)
		} else {
			b.WriteString(", node auto")
		}
	}
	if c.Budget > 0 {
		b.WriteString(", budget " + Size(c.Budget).String())
	}
	if c.SoftBudget > 0 {
		b.WriteString(", soft budget " + Size(c.SoftBudget).String())
	}
	return b.String()
}

// checkMemory checks a memory config at compile time: the kind must be
// registered in this build, and given a path if and only if it maps one.
func checkMemory(c buffers.PoolConfig) error {
	if c.Kind == "" {
		if c.Path != "" || c.Size > 0 {
			return fmt.Errorf("a path or size needs an arena kind backed by a file (cxl)")
		}
		return nil
	}
	k, err := buffers.LookupKind(c.Kind)
	switch {
	case err != nil:
		return err
	case k.Path && c.Path == "":
		return fmt.Errorf("arena %s needs a path (a device-DAX file like /dev/dax0.0, or a file on tmpfs or hugetlbfs)", c.Kind)
	case !k.Path && (c.Path != "" || c.Size > 0):
		return fmt.Errorf("arena %s does not use a path or size (only kinds backed by a file, like cxl)", c.Kind)
	}
	return nil
}
