package zflow_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// A memory kind supplied by another package (this test package), the way
// cxl supplies shared segments: a memfd-backed region mapped shared, with
// a trivial bump allocator (64-byte aligned, frees only counted). buffers
// knows nothing of it; the engine makes it for the one operator that asks.

type memfdPool struct {
	fd    int
	mem   []byte
	base  uintptr
	mu    sync.Mutex
	off   int
	inUse atomic.Int64
	peak  atomic.Int64
	limit int64
	accts sync.Map // owner → *memfdAccount
}

var memfdRegions sync.Map // base → size, of every live memfd pool (for the checks below)

func newMemfdPool(cfg buffers.PoolConfig) (buffers.Pool, error) {
	size := cfg.Size
	if size == 0 {
		size = 64 << 20
	}
	fd, err := unix.MemfdCreate("zflow-test-pool", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_test: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("memfd_test: ftruncate: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("memfd_test: mmap: %w", err)
	}
	p := &memfdPool{fd: fd, mem: mem, base: uintptr(unsafe.Pointer(&mem[0])), limit: cfg.Budget}
	memfdRegions.Store(p.base, len(mem))
	return p, nil
}

func (p *memfdPool) Kind() string { return "memfd_test" }

func (p *memfdPool) Account(owner string, limit int64) buffers.Account {
	a, _ := p.accts.LoadOrStore(owner, &memfdAccount{p: p, owner: owner, limit: limit})
	return a.(*memfdAccount)
}

func (p *memfdPool) Usage() buffers.Usage {
	return buffers.Usage{InUse: p.inUse.Load(), Peak: p.peak.Load(), Mapped: int64(len(p.mem)),
		MappedBy: []buffers.Backed{{Backing: "memfd", Bytes: int64(len(p.mem))}}}
}

func (p *memfdPool) Report() buffers.PoolReport {
	return buffers.PoolReport{Arena: "memfd_test", Node: -1, NodeSeen: -1, Mapped: int64(len(p.mem)),
		ByBacking: map[string]int64{"memfd": int64(len(p.mem))}, Peak: p.peak.Load(), Budget: p.limit,
		Path: fmt.Sprintf("/proc/self/fd/%d", p.fd)}
}

func (p *memfdPool) Close() error {
	if n := p.inUse.Load(); n != 0 {
		return fmt.Errorf("memfd_test: %d bytes still in use", n)
	}
	memfdRegions.Delete(p.base)
	if err := unix.Munmap(p.mem); err != nil {
		return err
	}
	return unix.Close(p.fd)
}

type memfdAccount struct {
	p           *memfdPool
	owner       string
	limit       int64
	used, peak  atomic.Int64
	allocations atomic.Int64
}

func (a *memfdAccount) try(n int64) error {
	if a.limit > 0 && a.used.Load()+n > a.limit {
		return &buffers.BudgetError{Owner: a.owner, Own: true, Asked: n, InUse: a.used.Load(), Limit: a.limit}
	}
	if a.p.limit > 0 && a.p.inUse.Load()+n > a.p.limit {
		return &buffers.BudgetError{Owner: a.owner, Asked: n, InUse: a.p.inUse.Load(), Limit: a.p.limit}
	}
	return nil
}

func (a *memfdAccount) charge(n int64) {
	v := a.used.Add(n)
	if v > a.peak.Load() {
		a.peak.Store(v)
	}
	if v := a.p.inUse.Add(n); v > a.p.peak.Load() {
		a.p.peak.Store(v)
	}
}

func (a *memfdAccount) TryAllocate(size int) ([]byte, error) {
	if err := a.try(int64(size)); err != nil {
		return nil, err
	}
	a.p.mu.Lock()
	off := (a.p.off + 63) &^ 63
	if off+size > len(a.p.mem) {
		a.p.mu.Unlock()
		return nil, fmt.Errorf("memfd_test: region full (%d of %d bytes)", off, len(a.p.mem))
	}
	a.p.off = off + size
	a.p.mu.Unlock()
	a.charge(int64(size))
	a.allocations.Add(1)
	return a.p.mem[off : off+size : off+size], nil // fresh memfd pages are zero
}

func (a *memfdAccount) Allocate(size int) []byte {
	b, err := a.TryAllocate(size)
	if err != nil {
		panic(err)
	}
	return b
}

func (a *memfdAccount) Reallocate(size int, b []byte) []byte {
	out := a.Allocate(size)
	copy(out, b)
	a.Free(b)
	return out
}

func (a *memfdAccount) Free(b []byte) {
	if cap(b) == 0 {
		return
	}
	a.used.Add(-int64(len(b)))
	a.p.inUse.Add(-int64(len(b)))
}

func (a *memfdAccount) Used() int64  { return a.used.Load() }
func (a *memfdAccount) Peak() int64  { return a.peak.Load() }
func (a *memfdAccount) Limit() int64 { return a.limit }
func (a *memfdAccount) Available() int64 {
	if a.limit == 0 {
		return math.MaxInt64
	}
	return a.limit - a.used.Load()
}
func (a *memfdAccount) Reserve(n int64) error {
	if err := a.try(n); err != nil {
		return err
	}
	a.charge(n)
	return nil
}
func (a *memfdAccount) Unreserve(n int64) { a.used.Add(-n); a.p.inUse.Add(-n) }

// inMemfd tells whether b lies in a live memfd_test pool.
func inMemfd(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	p := uintptr(unsafe.Pointer(&b[0]))
	found := false
	memfdRegions.Range(func(k, v any) bool {
		base := k.(uintptr)
		if p >= base && p < base+uintptr(v.(int)) {
			found = true
		}
		return !found
	})
	return found
}

// regionCheck is a sink that records, per column, how many batches had
// their data buffer in a memfd_test pool.
type regionCheck struct {
	mu      *sync.Mutex
	inPool  map[string]int
	batches *int
}

func (r regionCheck) Write(_ context.Context, _ int, in arrow.RecordBatch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.batches++
	for i, c := range in.Columns() {
		bufs := c.Data().Buffers()
		if inMemfd(bufs[len(bufs)-1].Bytes()) {
			r.inPool[in.Schema().Field(i).Name]++
		}
	}
	return nil
}
func (regionCheck) Close(context.Context) error { return nil }
func (regionCheck) Commit() error               { return nil }
func (regionCheck) Abort()                      {}

var (
	regionMu      sync.Mutex
	regionInPool  = map[string]int{}
	regionBatches int
)

// mappedSource emits the int64 values of a file it maps read-only, as
// Arrow arrays pointing straight into the mapping: memory it does not own
// and did not write, reported to the ledger by reference.
type mappedSource struct {
	ic   *engine.InstanceContext
	path string
	mem  []byte
}

func (m *mappedSource) Run(ctx context.Context, out engine.Emitter) error {
	f, err := os.Open(m.path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	m.mem, err = unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mapped: mmap %s: %w", m.path, err)
	}
	const rows = 1024
	for off := 0; off+rows*8 <= len(m.mem); off += rows * 8 {
		buf := memory.NewBufferBytes(m.mem[off : off+rows*8])
		data := array.NewData(arrow.PrimitiveTypes.Int64, rows, []*memory.Buffer{nil, buf}, nil, 0, 0)
		col := array.MakeFromData(data)
		data.Release()
		rec := array.NewRecordBatch(mappedSchema, []arrow.Array{col}, rows)
		col.Release()
		m.ic.Ledger.Referenced("mapped file", engine.BatchBytes(rec))
		if err := out.Emit(rec); err != nil {
			return err
		}
	}
	return nil
}

// Release unmaps the file once the run is over (nothing points into it).
func (m *mappedSource) Release() {
	if m.mem != nil {
		_ = unix.Munmap(m.mem)
	}
}

var mappedSchema = arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)

type mappedConfig struct {
	Path string `zflow:"path" required:"true" doc:"a file of little-endian int64s"`
}

func init() {
	buffers.RegisterKind(buffers.KindSpec{Name: "memfd_test", Doc: "a memfd region (test)", New: newMemfdPool})
	if err := zflow.Register(engine.Spec{
		Name: "test_region_check", Kind: engine.KindSink, Summary: "test sink", MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &struct{}{} },
		Build: func(*engine.BuildContext, any) (engine.Factory, error) {
			return fnFactory{schema: func() *arrow.Schema { return nil }, mk: func(*engine.InstanceContext) any {
				return regionCheck{mu: &regionMu, inPool: regionInPool, batches: &regionBatches}
			}}, nil
		},
	}); err != nil {
		panic(err)
	}
	if err := zflow.Register(engine.Spec{
		Name: "test_mapped", Kind: engine.KindSource, Summary: "test source",
		NewConfig: func() any { return &mappedConfig{} },
		Build: func(_ *engine.BuildContext, cfg any) (engine.Factory, error) {
			path := cfg.(*mappedConfig).Path
			return fnFactory{schema: func() *arrow.Schema { return mappedSchema }, mk: func(ic *engine.InstanceContext) any {
				return &mappedSource{ic: ic, path: path}
			}}, nil
		},
	}); err != nil {
		panic(err)
	}
}

// TestRegisteredArenaKind: one operator (notional) allocates from a pool
// of a kind this test package registered, while the others use the run's
// arena: its computed column lies in the memfd region, the columns it
// passes on do not, and the summary's memory report and ledger say so.
func TestRegisteredArenaKind(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Chdir(t.TempDir())
	p, err := zflow.Parse([]byte(`
version: 1
name: memfd
settings: {batch_rows: 8192, memory: {arena: plain}}
sources:
  trades:
    type: generate
    seed: 4
    rows: 100000
    columns:
      - {name: sym, type: string, cardinality: 10, prefix: S}
      - {name: qty, type: int64, min: 1, max: 1000}
      - {name: price, type: float64, min: 1, max: 100}
operators:
  notional:
    type: project
    inputs: [trades]
    columns: [sym, qty, "price * qty AS notional"]
    memory: {arena: memfd_test, budget: 32MiB}
sinks:
  out: {type: test_region_check, inputs: [notional]}
`), "memfd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	if err := p.Plan().WriteText(&plan); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan.String(), "memory: arena memfd_test, node auto, budget 32MiB") {
		t.Errorf("plan does not show notional's memory:\n%s", plan.String())
	}
	regionMu.Lock()
	clear(regionInPool)
	regionBatches = 0
	regionMu.Unlock()
	sum, logs := runLogged(t, p)
	if strings.Contains(logs, "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs)
	}
	regionMu.Lock()
	defer regionMu.Unlock()
	t.Logf("%d batches; data buffers in the memfd pool by column: %v; pools %+v", regionBatches, regionInPool, sum.Pools)
	if regionBatches == 0 || regionInPool["notional"] != regionBatches || regionInPool["sym"] != 0 || regionInPool["qty"] != 0 {
		t.Errorf("of %d batches, data buffers in the memfd pool: %v (want notional in every one, sym and qty in none)", regionBatches, regionInPool)
	}
	if len(sum.Pools) != 1 {
		t.Fatalf("pools: %+v", sum.Pools)
	}
	own := sum.Pools[0]
	if own.Arena != "memfd_test" || own.Budget != 32<<20 || own.Peak == 0 || len(own.Operators) != 1 || own.Operators[0] != "notional" || own.ByBacking["memfd"] == 0 {
		t.Errorf("the memfd pool's report: %+v", own)
	}
	if m := sum.Memory; m.Arena != "plain" || strings.Join(m.Operators, ",") != "trades,out" {
		t.Errorf("the run's pool: %+v", *m)
	}
	if m := sum.Op("notional").Memory; m == nil || m.Pool != "memfd_test" || !m.Own || m.Peak == 0 || m.InUse != 0 {
		t.Errorf("notional's memory: %+v", m)
	}
	if m := sum.Op("trades").Memory; m == nil || m.Pool != "plain" || m.Own {
		t.Errorf("trades' memory: %+v", m)
	}
	n := sum.Op("notional")
	if n.BytesRef == 0 || n.BytesNew == 0 || n.References[engine.RefInput] != n.BytesRef || n.BytesRef+n.BytesNew+n.BytesCopied != n.BytesOut {
		t.Errorf("notional's ledger: out %d ref %d created %d copied %d refs %v", n.BytesOut, n.BytesRef, n.BytesNew, n.BytesCopied, n.References)
	}
}

// TestLedgerMappedSource: a source emitting memory it does not own (a
// read-only mapping of a file) reports it by reference; a consumer that
// passes it on is by reference too, and nothing counts as created.
func TestLedgerMappedSource(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "ints.bin")
	vals := make([]byte, 8*1024*16)
	for i := range len(vals) / 8 {
		binary.LittleEndian.PutUint64(vals[i*8:], uint64(i))
	}
	if err := os.WriteFile(path, vals, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := zflow.Parse([]byte(fmt.Sprintf(`
version: 1
name: mapped
sources:
  ints: {type: test_mapped, path: %q}
operators:
  all: {type: filter, inputs: [ints], where: "v >= 0"}
sinks:
  out: {type: discard, inputs: [all]}
`, path)), "mapped.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checked := memory.NewCheckedAllocator(memory.NewGoAllocator())
	sum, _ := runLogged(t, p, zflow.WithAllocator(checked))
	checked.AssertSize(t, 0)
	src := sum.Op("ints")
	if src.BytesOut != int64(len(vals)) || src.BytesRef != src.BytesOut || src.BytesNew != 0 || src.References["mapped file"] != src.BytesOut {
		t.Errorf("source: out %d ref %d created %d refs %v", src.BytesOut, src.BytesRef, src.BytesNew, src.References)
	}
	all := sum.Op("all") // every row kept: the filter passes the batch itself
	if all.BytesOut != src.BytesOut || all.BytesRef != all.BytesOut || all.BytesCopied != 0 || all.BytesNew != 0 {
		t.Errorf("filter: out %d ref %d copied %d created %d", all.BytesOut, all.BytesRef, all.BytesCopied, all.BytesNew)
	}
	if _, _, _, ref := sum.Totals(); ref != 2*int64(len(vals)) {
		t.Errorf("total by reference %d", ref)
	}
}
