package zflow

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.opentelemetry.io/otel/attribute"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/pipelines"
	"github.com/zflowdev/zflow/topology"
)

// arenaConfig maps settings.memory to the arena it asks for; ok is false
// for arena heap (the Go allocator) and cxl (not in this build).
func arenaConfig(m pipelines.MemorySettings, log *slog.Logger) (cfg buffers.ArenaConfig, ok bool) {
	var kind buffers.Kind
	switch m.Arena {
	case "hugepage":
		kind = buffers.KindHugepage
	case "thp":
		kind = buffers.KindTHP
	case "plain":
		kind = buffers.KindPlain
	default:
		return cfg, false
	}
	cfg = buffers.ArenaConfig{
		Kind: kind, Node: buffers.NoNode, Budget: int64(m.Budget), SoftBudget: int64(m.Soft),
		Lock: m.Lock, Prefault: m.Prefault, Logger: log,
	}
	if kind == buffers.KindHugepage {
		cfg.Page = int64(m.Page)
	}
	if m.Node != pipelines.AutoNode {
		cfg.Node = int(m.Node)
	}
	return cfg, true
}

// useArena makes the run's arena from the pipeline's settings.memory, unless
// the caller passed an allocator: every operator instance then allocates
// through its own view of it (attributed to the operator, for budgets and
// stats), and the summary reports what the kernel gave. If the arena cannot
// be made the run uses the Go heap, with the reason logged.
func (p *Pipeline) useArena(ro *runOptions) {
	if ro.Alloc != nil || p.file == nil {
		return
	}
	cfg, ok := arenaConfig(p.file.Settings.Memory, ro.Logger.With("pipeline", p.name))
	if !ok {
		return
	}
	a, err := buffers.New(cfg)
	if err != nil {
		ro.Logger.Error("memory: no arena, batches use the Go heap: "+err.Error(), "pipeline", p.name)
		return
	}
	ro.Alloc = a
	ro.AllocFor = func(node, _ string, _ int) memory.Allocator { return a.For(node) }
	t := &ro.Telemetry
	t.Attributes = append(t.Attributes, engine.AttrArenaKind.String(cfg.Kind.String()), engine.AttrArenaNode.Int(cfg.Node))
	t.Gauges = func(o engine.GaugeObserver) {
		st := a.Stats()
		for _, b := range st.Backing {
			o("zflow.arena.bytes_mapped", "By", "arena bytes mapped, by what the kernel gave", b.Mapped,
				engine.AttrArenaBacking.String(backingName(b.Kind)))
		}
		o("zflow.arena.bytes_in_use", "By", "arena bytes allocated and not freed", st.InUse)
	}
	prev := ro.Finish
	ro.Finish = func(s *engine.Summary) {
		if prev != nil {
			prev(s)
		}
		s.Memory = memoryReport(a)
		if err := a.Close(); err != nil {
			// A batch outlived the run (held by the caller): the arena stays
			// mapped rather than pull memory from under it.
			ro.Logger.Error(err.Error(), "pipeline", p.name)
		}
	}
}

// backingName names a mapping's backing as the summary and the metrics do.
func backingName(k buffers.Kind) string {
	switch k {
	case buffers.KindHugepage:
		return "hugetlb"
	case buffers.KindTHP:
		return "thp"
	}
	return "plain"
}

func memoryReport(a *buffers.Allocator) *engine.MemoryReport {
	rep, st := a.Backing(), a.Stats()
	m := &engine.MemoryReport{
		Arena: rep.Kind.String(), Node: rep.Node, NodeSeen: buffers.NoNode,
		Mapped: rep.Mapped, Huge: rep.Huge, ByBacking: map[string]int64{},
		Peak: st.Peak, Budget: a.Arena().Config().Budget, SoftBudget: a.Arena().Config().SoftBudget,
		SoftWaits: st.SoftWaits, Fallbacks: rep.Fallbacks,
	}
	if rep.Kind == buffers.KindHugepage {
		m.Page = rep.Page
	}
	present := map[int]int{}
	for _, e := range rep.Extents {
		m.ByBacking[backingName(e.Got)] += e.Size
		if e.NodeObserved != buffers.NoNode {
			present[e.NodeObserved] += e.Present
		}
	}
	best := 0
	for n, c := range present {
		if c > best {
			m.NodeSeen, best = n, c
		}
	}
	if rep.Unbound != "" {
		m.Fallbacks = append(m.Fallbacks, rep.Unbound)
	}
	if rep.ReadErr != "" {
		m.Fallbacks = append(m.Fallbacks, "could not read back the mappings: "+rep.ReadErr)
	}
	return m
}

// usePinning pins each operator instance's thread to the CPUs of a NUMA
// node when settings.pin asks: memory.node if set, else the node nearest
// the operator's data (its path). Where no node can be chosen, or pinning
// fails, the instance runs unpinned and the reason is logged once.
func (p *Pipeline) usePinning(ro *runOptions) {
	if p.file == nil || !p.file.Settings.Pin {
		return
	}
	m, err := topology.Read(topology.Host())
	if err != nil {
		ro.Logger.Warn("pin: cannot read the topology, operators run unpinned: "+err.Error(), "pipeline", p.name)
		return
	}
	fixed := int(p.file.Settings.Memory.Node)
	paths := map[string]string{}
	for _, n := range p.file.Graph.Nodes {
		paths[n.ID] = configPath(n.Config)
	}
	var once sync.Map
	logOnce := func(key string, level slog.Level, msg string) {
		if _, seen := once.LoadOrStore(key, true); !seen {
			ro.Logger.Log(context.Background(), level, msg, "pipeline", p.name)
		}
	}
	ro.OnInstance = func(node, _ string, idx int) {
		target, why := fixed, "settings.memory.node"
		if target == int(pipelines.AutoNode) {
			target, why = m.Pick(paths[node])
		}
		if target < 0 {
			logOnce(node, slog.LevelWarn, fmt.Sprintf("pin: operator %q runs unpinned: %s", node, why))
			return
		}
		// The goroutine keeps this thread to its end; Go then ends the
		// thread, so the affinity never leaks to other goroutines.
		runtime.LockOSThread()
		if err := m.PinCurrentThreadToNode(target); err != nil {
			logOnce(node, slog.LevelWarn, fmt.Sprintf("pin: operator %q runs unpinned: %v", node, err))
			return
		}
		logOnce(node, slog.LevelInfo, fmt.Sprintf("pin: operator %q on node %d (%s)", node, target, why))
	}
	ro.Telemetry.Attributes = append(ro.Telemetry.Attributes, attribute.Bool("zflow.pin", true))
}

// configPath is the path parameter of an operator's config (the file it
// reads or writes), or "".
func configPath(cfg any) string {
	v := reflect.ValueOf(cfg)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return ""
	}
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if f.Tag.Get("zflow") == "path" && f.Type.Kind() == reflect.String {
			return v.Field(i).String()
		}
	}
	return ""
}
