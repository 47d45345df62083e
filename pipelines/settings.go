package pipelines

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/k8sname"
)

// Settings are the pipeline-wide knobs of the `settings:` section. The
// engine reads BatchRows and EdgeCapacity now (see Engine); Memory and Trace
// are parsed and checked here and kept for the memory and tracing layers.
type Settings struct {
	BatchRows    int             `zflow:"batch_rows" doc:"target rows per batch for sources"`
	EdgeCapacity int             `zflow:"edge_capacity" doc:"batches an edge buffers before its producer blocks"`
	Memory       MemorySettings  `zflow:"memory" doc:"where batches live"`
	Pin          bool            `zflow:"pin" doc:"pin each operator instance's thread to the CPUs of the NUMA node nearest its data (or memory.node)"`
	Threads      Auto            `zflow:"threads" doc:"most instances parallelism: auto gives an operator, and the zflow command's GOMAXPROCS: auto (the CPUs this process may use: affinity, cgroup CPU quota) or a number ≥ 1 to use fewer"`
	Trace        TraceSettings   `zflow:"trace" doc:"OpenTelemetry tracing"`
	Metrics      MetricSettings  `zflow:"metrics" doc:"OpenTelemetry metrics and the Prometheus endpoint"`
	Spill        SpillSettings   `zflow:"spill" doc:"where stateful operators (sort) write what does not fit their memory budget"`
	Cluster      ClusterSettings `zflow:"cluster" doc:"how zflow run --cluster kubernetes runs the pipeline: worker pods, their image and namespace, the shared directories they see"`
}

// ClusterSettings say how a cluster run (zflow run --cluster kubernetes)
// runs the pipeline; a run on one host ignores them.
type ClusterSettings struct {
	Workers   int           `zflow:"workers" doc:"worker pods: each runs the pipeline over its share of the input (a shardable source's files, row groups or rows) and writes its part of every sink"`
	Namespace string        `zflow:"namespace" doc:"the Kubernetes namespace the run's Job, pods and ConfigMap are made in"`
	Image     string        `zflow:"image" doc:"the workers' container image: make image builds zflow.local/zflow:dev, to import on every node"`
	HostPaths []string      `zflow:"host_paths" doc:"directories every node and the coordinator have at the same path (a shared file system): mounted into each worker at that path; every file the pipeline reads or writes must be under one" example:"[/data]"`
	TTL       time.Duration `zflow:"ttl" doc:"how long Kubernetes keeps a finished run's Job (and so its pods and ConfigMap) when the coordinator did not delete it (the run's end deletes them at once): at least 1m, or 0 to keep it until deleted"`
}

// SpillSettings say where stateful operators spill (engine.SpillSettings).
type SpillSettings struct {
	Dir         string `zflow:"dir" doc:"directory under which each spilling operator instance makes its own (zflow-spill-<pid>-<node>-<random>), removed when it ends; empty means the OS temporary directory"`
	IO          string `zflow:"io" enum:"auto,posix,uring" doc:"storage backend of the spill files; unset means auto (decided from the directory's file system)"`
	Compression string `zflow:"compression" enum:"none,lz4,zstd" doc:"compression of the spilled Arrow IPC data; unset means none"`
}

// MemorySettings choose the arena batches are allocated from.
type MemorySettings struct {
	Arena    string      `zflow:"arena" doc:"hugepage (MAP_HUGETLB, falling back to thp then plain pages, each step logged), thp (transparent hugepages), plain (mmap'd 4 KiB pages), heap (the Go heap, no arena), or a kind another package registers in this build (cxl: a shared segment at path)"`
	Page     engine.Size `zflow:"page" doc:"hugepage size for arena hugepage: 2MiB or 1GiB"`
	Node     NUMANode    `zflow:"node" doc:"NUMA node to bind the arena to: auto or a node number"`
	Budget   engine.Size `zflow:"budget" doc:"hard limit on bytes in use: an allocation beyond it fails the run, naming the operator (an operator can also ask how much is left and spill); 0 means no limit"`
	Soft     engine.Size `zflow:"soft_budget" doc:"bytes in use above which allocations wait for frees (backpressure); 0 means none"`
	Lock     bool        `zflow:"lock" doc:"mlock the arena"`
	Prefault bool        `zflow:"prefault" doc:"touch every page at start-up"`
	Path     string      `zflow:"path" doc:"for kinds backed by a file (cxl): a device-DAX file (/dev/dax0.0) or a file on tmpfs or hugetlbfs"`
	Size     engine.Size `zflow:"size" doc:"for kinds backed by a file (cxl): the size of the segment to create"`

	// arenaWritten says the file names the arena (memory.arena): only then
	// is a fallback (no hugepages reserved, say) a warning; the default
	// arena falls back quietly (buffers.PoolConfig.QuietFallback).
	arenaWritten bool
}

// Pool is the engine's memory config for m.
func (m MemorySettings) Pool() buffers.PoolConfig {
	c := buffers.PoolConfig{
		Kind: m.Arena, Budget: int64(m.Budget), SoftBudget: int64(m.Soft),
		Lock: m.Lock, Prefault: m.Prefault, Path: m.Path, Size: int64(m.Size),
		QuietFallback: !m.arenaWritten,
	}
	if m.Arena == "hugepage" {
		c.Page = int64(m.Page)
	}
	if m.Node != AutoNode {
		c.Bind, c.Node = true, int(m.Node)
	}
	return c
}

// nodeMemoryDefaults are the defaults of a node's memory: block: no arena
// (the run's pool, under the node's own budget).
func nodeMemoryDefaults() MemorySettings {
	m := DefaultSettings().Memory
	m.Arena = ""
	return m
}

// TraceSettings choose where OpenTelemetry traces go.
type TraceSettings struct {
	Exporter string        `zflow:"exporter" enum:"none,stdout,otlp" doc:"none, stdout or otlp"`
	Protocol string        `zflow:"protocol" enum:"grpc,http" doc:"OTLP transport: grpc (port 4317) or http (OTLP/HTTP protobuf, port 4318)"`
	Endpoint string        `zflow:"endpoint" doc:"OTLP endpoint (host:port or a URL); empty means the OpenTelemetry default"`
	Sampling float64       `zflow:"sampling" doc:"fraction of runs traced, 0 to 1"`
	Batches  float64       `zflow:"batches" doc:"fraction of source batches traced through every operator, 0 to 1 (0: one span per operator instance only)"`
	Timeout  time.Duration `zflow:"timeout" doc:"longest wait for the collector, per export and at shutdown"`
}

// MetricSettings choose where OpenTelemetry metrics go.
type MetricSettings struct {
	Exporter string        `zflow:"exporter" enum:"none,stdout,otlp" doc:"none, stdout or otlp"`
	Protocol string        `zflow:"protocol" enum:"grpc,http" doc:"OTLP transport: grpc or http"`
	Endpoint string        `zflow:"endpoint" doc:"OTLP endpoint (host:port or a URL); empty means the OpenTelemetry default"`
	Interval time.Duration `zflow:"interval" doc:"how often metrics are exported"`
	Listen   string        `zflow:"listen" doc:"serve a Prometheus scrape endpoint (/metrics) at this host:port during the run"`
}

// Auto is a count that may be left to zflow: "auto" (0) or a number ≥ 1.
type Auto int

// UnmarshalText accepts "auto" or a whole number ≥ 1.
func (a *Auto) UnmarshalText(b []byte) error {
	s := string(b)
	if s == "auto" {
		*a = 0
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > 1<<16 {
		return fmt.Errorf("want auto or a whole number ≥ 1, got %q", s)
	}
	*a = Auto(v)
	return nil
}

func (a Auto) String() string {
	if a == 0 {
		return "auto"
	}
	return strconv.Itoa(int(a))
}

// NUMANode is a NUMA node number, or AutoNode.
type NUMANode int

// AutoNode lets the engine choose the NUMA node (the one nearest the data).
const AutoNode NUMANode = -1

// UnmarshalText accepts "auto" or a node number.
func (n *NUMANode) UnmarshalText(b []byte) error {
	s := string(b)
	if s == "auto" {
		*n = AutoNode
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > 1<<16 {
		return fmt.Errorf("invalid NUMA node %q (want auto or a node number like 0)", s)
	}
	*n = NUMANode(v)
	return nil
}

func (n NUMANode) String() string {
	if n == AutoNode {
		return "auto"
	}
	return strconv.Itoa(int(n))
}

// DefaultSettings are the settings of a pipeline that says nothing.
func DefaultSettings() Settings {
	d := engine.DefaultSettings()
	return Settings{
		BatchRows:    d.BatchRows,
		EdgeCapacity: d.EdgeCapacity,
		Memory:       MemorySettings{Arena: "hugepage", Page: 2 << 20, Node: AutoNode, Prefault: true},
		Trace:        TraceSettings{Exporter: "none", Protocol: "grpc", Sampling: 1, Timeout: 5 * time.Second},
		Metrics:      MetricSettings{Exporter: "none", Protocol: "grpc", Interval: 10 * time.Second},
		Cluster:      ClusterSettings{Workers: 2, Namespace: "default", Image: "zflow.local/zflow:dev", TTL: 10 * time.Minute},
	}
}

// Engine returns the part of s the engine reads.
func (s Settings) Engine() engine.Settings {
	return engine.Settings{BatchRows: s.BatchRows, EdgeCapacity: s.EdgeCapacity, Memory: s.Memory.Pool(), Pin: s.Pin, Threads: int(s.Threads),
		Spill: engine.SpillSettings{Dir: s.Spill.Dir, IO: s.Spill.IO, Compression: s.Spill.Compression}}
}

// checkMemory checks a memory block (settings.memory, or a node's memory:
// with node set) for what a struct tag cannot say. at and ok are as in
// decodeSettings, relative to the block's parent.
func (d *decoder) checkMemory(m *MemorySettings, key string, at func(...string) filePos, ok func(...string) bool, node bool) {
	k := func(f string) string { return key + "." + f }
	pos := func(f string) filePos { return at(key, f) }
	var spec *buffers.KindSpec
	if m.Arena != "" && ok(k("arena")) {
		if ks, err := buffers.LookupKind(m.Arena); err != nil {
			d.errs.add(pos("arena"), "%s.arena: %s", key, strings.TrimPrefix(err.Error(), "buffers: "))
		} else {
			spec = &ks
		}
	}
	if m.Page != 2<<20 && m.Page != 1<<30 && ok(k("page")) {
		d.errs.add(pos("page"), "%s.page: hugepages are 2MiB or 1GiB, got %s", key, m.Page)
	}
	if m.Budget < 0 && ok(k("budget")) {
		d.errs.add(pos("budget"), "%s.budget: must be ≥ 0, got %s", key, m.Budget)
	}
	if m.Soft < 0 && ok(k("soft_budget")) {
		d.errs.add(pos("soft_budget"), "%s.soft_budget: must be ≥ 0, got %s", key, m.Soft)
	}
	if m.Budget > 0 && m.Soft > m.Budget && ok(k("budget"), k("soft_budget")) {
		d.errs.add(pos("soft_budget"), "%s.soft_budget %s is above the hard budget %s", key, m.Soft, m.Budget)
	}
	if node && m.Arena == "" && ok(k("arena")) {
		// No arena: the node shares the run's pool; only its budget applies.
		for _, f := range []struct {
			name string
			set  bool
		}{{"soft_budget", m.Soft > 0}, {"lock", m.Lock}, {"path", m.Path != ""}, {"size", m.Size > 0}, {"node", m.Node != AutoNode}} {
			if f.set && ok(k(f.name)) {
				d.errs.add(pos(f.name), "%s.%s: needs an arena of the operator's own (memory.arena); without one the operator allocates from the run's pool and only memory.budget applies", key, f.name)
			}
		}
	}
	if m.Arena == "heap" && (m.Soft > 0 || m.Lock || m.Node != AutoNode) && ok(k("arena"), k("soft_budget"), k("lock"), k("node")) {
		d.errs.add(pos("arena"), "%s: arena heap has no soft budget, node or lock (they need an arena: hugepage, thp or plain)", key)
	}
	if spec != nil && spec.Path && m.Path == "" && ok(k("path")) {
		d.errs.add(pos("arena"), "%s: arena %s needs a path (a device-DAX file like /dev/dax0.0, or a file on tmpfs or hugetlbfs)", key, m.Arena)
	}
	if spec != nil && !spec.Path && (m.Path != "" || m.Size > 0) && ok(k("path"), k("size")) {
		f := "path"
		if m.Path == "" {
			f = "size"
		}
		d.errs.add(pos(f), "%s.%s: arena %s does not use a %s (only kinds backed by a file, like cxl)", key, f, m.Arena, f)
	}
}

// decodeSettings decodes the settings section into s, then checks what a
// struct tag cannot say.
func (d *decoder) decodeSettings(n *node, s *Settings) {
	d.failed = nil // the checks below look at the settings' errors only
	d.decodeStruct(n, structValue(s), "", &decodeCtx{noun: "setting"}, nil)
	if n.kind != nodeMap {
		return
	}
	at := func(path ...string) filePos {
		if v := resolvePath(n, path); v != nil {
			return v.pos
		}
		return n.pos
	}
	// ok tells whether the values a check reads decoded without error (a
	// check of a default left by a failed value would only add noise).
	ok := func(paths ...string) bool {
		for _, p := range paths {
			if d.failed[p] {
				return false
			}
		}
		return true
	}
	if s.BatchRows < 1 && ok("batch_rows") {
		d.errs.add(at("batch_rows"), "batch_rows: must be ≥ 1, got %d", s.BatchRows)
	}
	if s.EdgeCapacity < 1 && ok("edge_capacity") {
		d.errs.add(at("edge_capacity"), "edge_capacity: must be ≥ 1, got %d", s.EdgeCapacity)
	}
	s.Memory.arenaWritten = resolvePath(n, []string{"memory", "arena"}) != nil
	d.checkMemory(&s.Memory, "memory", at, ok, false)
	t := &s.Trace
	if (t.Sampling < 0 || t.Sampling > 1 || t.Sampling != t.Sampling) && ok("trace.sampling") {
		d.errs.add(at("trace", "sampling"), "trace.sampling: must be between 0 and 1, got %v", t.Sampling)
	}
	if t.Endpoint != "" && t.Exporter != "otlp" && ok("trace.exporter", "trace.endpoint") {
		d.errs.add(at("trace", "endpoint"), "trace.endpoint: only exporter otlp uses an endpoint (exporter is %s)", t.Exporter)
	}
	if (t.Batches < 0 || t.Batches > 1 || t.Batches != t.Batches) && ok("trace.batches") {
		d.errs.add(at("trace", "batches"), "trace.batches: must be between 0 and 1, got %v", t.Batches)
	}
	if t.Timeout <= 0 && ok("trace.timeout") {
		d.errs.add(at("trace", "timeout"), "trace.timeout: must be > 0, got %v", t.Timeout)
	}
	c := &s.Cluster
	if (c.Workers < 1 || c.Workers > 1000) && ok("cluster.workers") {
		d.errs.add(at("cluster", "workers"), "cluster.workers: must be 1 to 1000, got %d", c.Workers)
	}
	if !k8sname.IsLabel(c.Namespace) && ok("cluster.namespace") {
		d.errs.add(at("cluster", "namespace"), "cluster.namespace: %q is not a Kubernetes namespace name (lower-case letters, digits and -, at most 63)", c.Namespace)
	}
	if c.Image == "" && ok("cluster.image") {
		d.errs.add(at("cluster", "image"), "cluster.image: must name an image")
	}
	for i, h := range c.HostPaths {
		if !filepath.IsAbs(h) || filepath.Clean(h) != h || h == "/" {
			d.errs.add(at("cluster", "host_paths"), "cluster.host_paths[%d]: %q must be a clean absolute directory other than /", i, h)
		}
	}
	if (c.TTL < 0 || (c.TTL > 0 && c.TTL < time.Minute)) && ok("cluster.ttl") {
		// Shorter, Kubernetes could delete a finished Job (and the reports
		// in its pods) before the coordinator has read them.
		d.errs.add(at("cluster", "ttl"), "cluster.ttl: must be 0 (keep a finished Job until it is deleted) or at least 1m, got %v", c.TTL)
	}
	mt := &s.Metrics
	if mt.Endpoint != "" && mt.Exporter != "otlp" && ok("metrics.exporter", "metrics.endpoint") {
		d.errs.add(at("metrics", "endpoint"), "metrics.endpoint: only exporter otlp uses an endpoint (exporter is %s)", mt.Exporter)
	}
	if mt.Interval <= 0 && ok("metrics.interval") {
		d.errs.add(at("metrics", "interval"), "metrics.interval: must be > 0, got %v", mt.Interval)
	}
	if mt.Listen != "" && ok("metrics.listen") {
		if _, _, err := net.SplitHostPort(mt.Listen); err != nil {
			d.errs.add(at("metrics", "listen"), "metrics.listen: want host:port (like 127.0.0.1:9464 or :9464), got %q", mt.Listen)
		}
	}
}
