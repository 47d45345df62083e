package engine

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/internal/units"
)

// Size is a byte count that config files write as "64KiB", "2GiB", "1MB" or a
// plain integer.
type Size int64

var (
	durationType   = reflect.TypeOf(time.Duration(0))
	sizeType       = reflect.TypeOf(Size(0))
	orderedMapType = reflect.TypeOf(OrderedMap(nil))
)

// OrderedMap is a parameter written as a map of strings whose order
// matters, as an aggregate's aggregates: {name: expression, ...} gives its
// output columns in the order written (a Go map would lose it). Package
// pipelines decodes a YAML map into it entry by entry; its keys are unique
// there (a YAML map's are).
type OrderedMap []MapEntry

// MapEntry is one key: value of an OrderedMap.
type MapEntry struct{ Key, Value string }

// Get returns the value of key k and whether it is there.
func (m OrderedMap) Get(k string) (string, bool) {
	for _, e := range m {
		if e.Key == k {
			return e.Value, true
		}
	}
	return "", false
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseSize parses "64KiB", "2 GiB", "1.5MB", "4096".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil && n >= 0 {
		if mult > 1 && n > (1<<62)/mult {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return Size(n * mult), nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("invalid size %q (want e.g. 64KiB, 2GiB, 4096)", s)
	}
	return Size(f * float64(mult)), nil
}

func (s Size) String() string {
	n := int64(s)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.suffix)
		}
	}
	return strconv.FormatInt(n, 10)
}

// HumanBytes renders n bytes for people: "512 B", "64 MiB", "1.94 GiB"
// (units.Bytes, the format every zflow package uses).
func HumanBytes(n int64) string { return units.Bytes(n) }

// Settings are the pipeline-wide knobs the engine itself reads.
type Settings struct {
	// BatchRows is the target number of rows per batch for sources.
	BatchRows int
	// EdgeCapacity is the number of batches an edge buffers before its
	// producer blocks (backpressure).
	EdgeCapacity int
	// Memory is the run's pool: what the operators allocate batches from
	// (see DefaultMemory; a zero Kind means DefaultMemory's, with the
	// budgets given here). A node's own Memory overrides it for that node.
	Memory buffers.PoolConfig
	// Pin pins each operator instance's thread to the CPUs of a NUMA node:
	// the node its memory is bound to, else the node nearest its data (the
	// device behind its path parameter). Where none can be chosen, or
	// pinning fails, the instance runs unpinned and the reason is logged.
	Pin bool
	// Threads caps how many instances `parallelism: auto` gives an operator
	// (see Node.Parallelism); 0 means the CPUs this process may use
	// (topology.ReadCPUBudget: affinity, cgroup CPU quota, GOMAXPROCS). It
	// does not change GOMAXPROCS: the zflow command does that, a program
	// embedding the engine decides for itself. Operators that work in
	// parallel inside one instance (a Parquet sink's column encoders, say)
	// read the resolved count from InstanceContext.Settings.Threads.
	Threads int
	// Spill says where stateful operators spill (see SpillSettings).
	Spill SpillSettings
	// Shard makes this run one of several processes that run the same
	// pipeline over shares of its input (the workers of a cluster run):
	// see Shard.
	Shard Shard
}

// Shard is this process's share of a run split across processes: shard
// Index of Count. Each source whose Spec is Shardable reads only its
// share (InstanceContext.Mine and ShareRange: files, row groups,
// batches or rows, as it splits its work); a source that cannot split is
// read by shard 0 alone, and its node emits nothing on the others. A zero
// Shard (Count 0 or 1) is the whole run.
//
// Peers, when set, connects the shards to each other for the exchanges
// between hosts (a repartition across: hosts): rows of one key meet on
// one shard whichever shard read them. Without it such an exchange stays
// inside the process, which is right for a run of one shard and refused
// by an exchange of a sharded run.
type Shard struct {
	Index, Count int
	Peers        Peers
}

// Peers are the connections between the shards of a run (the workers of a
// cluster run), made by whoever placed them (cluster.Mesh).
type Peers interface {
	// Connect returns exchange's connections: out[j] sends to shard j,
	// in[j] receives from it; both are nil at this shard's own index.
	// Every shard calls it once per exchange, with the same name, and it
	// returns when all the connections are made (or fails naming the
	// shard that did not come).
	Connect(ctx context.Context, exchange string) (out, in []*net.TCPConn, err error)
}

// Sharded says the run is one of several shards.
func (s Shard) Sharded() bool { return s.Count > 1 }

// DefaultSettings are used where a pipeline says nothing.
func DefaultSettings() Settings {
	return Settings{BatchRows: 65536, EdgeCapacity: 4, Memory: DefaultMemory()}
}

func (s Settings) withDefaults() Settings {
	d := DefaultSettings()
	if s.BatchRows <= 0 {
		s.BatchRows = d.BatchRows
	}
	if s.EdgeCapacity <= 0 {
		s.EdgeCapacity = d.EdgeCapacity
	}
	if s.Memory.Kind == "" {
		m := d.Memory
		m.Budget, m.SoftBudget, m.Lock = s.Memory.Budget, s.Memory.SoftBudget, s.Memory.Lock
		m.Bind, m.Node = s.Memory.Bind, s.Memory.Node
		m.Path, m.Size = s.Memory.Path, s.Memory.Size // refused by Compile: no kind maps them
		s.Memory = m
	}
	return s
}
