package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/k8sname"
	"github.com/zflowdev/zflow/pipelines"
	"github.com/zflowdev/zflow/topology"
)

// Options are what Prepare takes besides the pipeline.
type Options struct {
	// Dir is the directory relative paths of the pipeline resolve against
	// (the coordinator's working directory); "" is os.Getwd.
	Dir string
	// Registry holds the operators; nil is engine.DefaultRegistry.
	Registry *engine.Registry
	// Lookup reads the variables the pipeline refers to (${VAR}); nil is
	// os.LookupEnv. The workers get the values it found.
	Lookup func(string) (string, bool)
	// Workers, when > 0, overrides settings.cluster.workers.
	Workers int
	// RunID names the run; "" makes one from the pipeline's name.
	RunID string
}

// Job is a planned cluster run: what every worker runs and where its
// output goes.
type Job struct {
	RunID     string
	Name      string // the pipeline's name
	File      string // the pipeline file's base name
	Src       []byte // the pipeline file as written: every worker parses it
	Dir       string // relative paths resolve against it
	Workers   int
	Namespace string
	Image     string
	HostPaths []string
	TTL       time.Duration
	// Env is the variables the pipeline refers to that the coordinator
	// had, by name: each worker gets them.
	Env     map[string]string
	Sources []SourceShare
	Sinks   []SinkPart
	// Pin and Hugepages carry settings.pin and memory.arena: hugepage to
	// the workers' resource requests.
	Pin       bool
	Hugepages bool
	Threads   int   // settings.threads, 0 for auto
	Budget    int64 // settings.memory.budget, 0 for none
	// Trace is the coordinator's span as a W3C traceparent: each worker's
	// run span is its child. "" when the coordinator does not trace.
	Trace string
	// TraceFiles says the workers write their spans to files in
	// TraceDir, which the coordinator adds to its own trace file.
	TraceFiles bool
	// Exchanges are the repartitions across hosts: where the workers
	// send each other rows (over the Mesh), in the order of the file.
	Exchanges []string
	// Token is the run's secret, which a worker's control and data
	// connections must show (hex, TokenSize bytes); every worker gets it
	// in ZFLOW_MESH_TOKEN.
	Token string
	// Needs are what a node must have for the pipeline's placement to
	// be possible there, as node labels of zflow topology --labels (the
	// DAX device an arena maps, the NUMA node memory is bound to, the
	// RDMA device an operator names).
	Needs []Need
}

// Need is a node label requirement: Key exists (Op "Exists"), or its
// value is a number greater than Value (Op "Gt").
type Need struct {
	Key, Op, Value string
	Why            string // what in the pipeline asks for it
}

// TraceDir is where the workers write their spans when TraceFiles: one
// file per attempt, under the first host path.
func (j *Job) TraceDir() string {
	if len(j.HostPaths) == 0 {
		return ""
	}
	return filepath.Join(j.HostPaths[0], ".zflow-traces-"+j.RunID)
}

// SourceShare says how a source's data is shared among the workers.
type SourceShare struct {
	ID, Type string
	Split    bool     // each worker reads its share; false: worker 0 reads it all
	Paths    []string // what it reads, absolute (file sources)
}

// SinkPart is a file sink: each worker writes its part; the published
// output is a directory at Path of part-NNNNN<Ext> files, one per worker.
type SinkPart struct {
	ID, Type string
	Path     string // absolute
	Ext      string // the part files' extension, from Path (or the sink's type)
}

// Prepare plans a cluster run of the pipeline src (the text of the file
// named file), refusing with a clear error what a cluster run cannot do
// correctly.
func Prepare(src []byte, file string, o Options) (*Job, error) {
	if o.Dir == "" {
		d, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		o.Dir = d
	}
	reg := o.Registry
	if reg == nil {
		reg = engine.DefaultRegistry
	}
	lookup := o.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	env := map[string]string{}
	p, err := pipelines.Parse(src, file, pipelines.WithRegistry(reg), pipelines.WithEnv(func(k string) (string, bool) {
		v, ok := lookup(k)
		if ok {
			env[k] = v
		}
		return v, ok
	}))
	if err != nil {
		return nil, err
	}
	cs := p.Settings.Cluster
	j := &Job{Name: p.Name, File: filepath.Base(file), Src: src, Dir: o.Dir, Workers: cs.Workers,
		Namespace: cs.Namespace, Image: cs.Image, HostPaths: cs.HostPaths, TTL: cs.TTL, Env: env,
		// Only an arena the file asks for: the default one falls back to
		// plain pages quietly, and asking every node for hugepages would
		// leave the workers unscheduled where none are reserved.
		Pin: p.Settings.Pin, Hugepages: p.Settings.Memory.Arena == "hugepage" && p.Settings.Memory.Page == 2<<20 && !p.Settings.Memory.Pool().QuietFallback,
		Threads: int(p.Settings.Threads), Budget: int64(p.Settings.Memory.Budget)}
	if o.Workers > 0 {
		j.Workers = o.Workers
	}
	j.RunID = o.RunID
	if j.RunID == "" {
		j.RunID = newRunID(p.Name)
	}
	if !k8sname.IsLabel(j.RunID) || len(j.RunID) > 52 {
		// It names the Job, the ConfigMap and the staging directories.
		return nil, fmt.Errorf("cluster: run id %q: want lower-case letters, digits and -, at most 52", j.RunID)
	}
	for _, k := range reservedEnv {
		delete(env, k) // the worker's own value, not the coordinator's
	}
	j.Needs = needs(p.Graph)
	var errs []error
	bad := func(n *engine.Node, format string, args ...any) {
		errs = append(errs, fmt.Errorf("cluster: %s %s (%s): %s", n.Kind, n.ID, n.Type, fmt.Sprintf(format, args...)))
	}
	for _, n := range p.Graph.Nodes {
		spec, err := reg.Lookup(n.Kind, n.Type)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pv, hasPath := pathField(n.Config)
		switch n.Kind {
		case engine.KindSource:
			s := SourceShare{ID: n.ID, Type: n.Type, Split: spec.Shardable}
			if hasPath {
				for _, f := range pathStrings(pv) {
					if f == "-" {
						bad(n, "reads standard input, which the workers do not have")
						continue
					}
					a := j.abs(f)
					if err := j.shared(a); err != nil {
						bad(n, "%v", err)
					}
					s.Paths = append(s.Paths, a)
				}
			}
			j.Sources = append(j.Sources, s)
		case engine.KindTransform:
			if tv, ok := field(n.Config, "table"); ok && tv.Kind() == reflect.String && tv.String() != "" {
				// A file the operator reads whole (lookup_join's table).
				if err := j.shared(j.abs(tv.String())); err != nil {
					bad(n, "table: %v", err)
				}
			}
			if n.Type == "repartition" {
				if av, ok := field(n.Config, "across"); ok && av.String() == "hosts" {
					j.Exchanges = append(j.Exchanges, n.ID)
				}
			}
			if !spec.BatchLocal && j.Workers > 1 {
				if why := keyedAfterExchange(p.Graph, n); why != "" {
					bad(n, "needs rows of other batches than the one it is given (it keeps state across them), and each of the %d workers would see only its share of the input: %s (or settings.cluster.workers: 1)", j.Workers, why)
				}
			}
		case engine.KindSink:
			if n.Type == "discard" {
				continue
			}
			if !hasPath || pv.Kind() != reflect.String {
				bad(n, "writes no file: a cluster run's sinks write files under settings.cluster.host_paths")
				continue
			}
			path := pv.String()
			if path == "-" {
				bad(n, "writes standard output, which the workers do not share: give it a file path")
				continue
			}
			if pb, ok := field(n.Config, "partition_by"); ok && pb.Len() > 0 {
				bad(n, "partition_by: a cluster run writes one part file per worker, not a partitioned tree yet")
				continue
			}
			a := j.abs(path)
			if err := j.shared(a); err != nil {
				bad(n, "%v", err)
				continue
			}
			ext := filepath.Ext(a)
			if ext == "" {
				ext = "." + n.Type
			}
			j.Sinks = append(j.Sinks, SinkPart{ID: n.ID, Type: n.Type, Path: a, Ext: ext})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	{
		var t [TokenSize]byte
		_, _ = rand.Read(t[:])
		j.Token = hex.EncodeToString(t[:])
	}
	return j, nil
}

// keyedAfterExchange says why n, an operator keeping state, cannot run on
// every worker of a cluster run, or "" when it can: its state is kept by
// key (an aggregate's group_by, a distinct's or a dedupe's by), and every
// input reaches it, through filters and repartitions inside the worker
// only, from a repartition across hosts by some of those keys, so all
// the rows of one of its keys are on one worker.
func keyedAfterExchange(g *engine.Graph, n *engine.Node) string {
	var keys []string
	switch n.Type {
	case "aggregate":
		keys = stringsField(n.Config, "group_by")
	case "distinct", "dedupe":
		keys = stringsField(n.Config, "by")
	default:
		return "a cluster run runs only aggregates, distincts and dedupes (by key) on every worker, after a repartition across: hosts"
	}
	if len(keys) == 0 {
		return "it has no keys to split its state by: its result needs every row"
	}
	byID := map[string]*engine.Node{}
	for _, m := range g.Nodes {
		byID[m.ID] = m
	}
	var walk func(m *engine.Node) string
	walk = func(m *engine.Node) string {
		for _, in := range m.Inputs {
			u, ok := byID[in]
			if !ok {
				return fmt.Sprintf("its input %s is an output port of an operator, not a repartition across: hosts", in)
			}
			switch {
			case u.Type == "repartition" && fieldString(u.Config, "across") == "hosts":
				by := stringsField(u.Config, "by")
				if len(by) == 0 {
					return fmt.Sprintf("repartition %s across hosts is round robin: give it by: with some of %s", u.ID, strings.Join(keys, ", "))
				}
				for _, k := range by {
					if !slices.Contains(keys, k) {
						return fmt.Sprintf("repartition %s sends rows across hosts by %s, which is not one of its keys (%s): the rows of one key would be on several workers", u.ID, k, strings.Join(keys, ", "))
					}
				}
			case u.Kind == engine.KindTransform && (u.Type == "filter" || u.Type == "repartition"):
				if why := walk(u); why != "" {
					return why
				}
			default:
				return fmt.Sprintf("its input comes from %s %s (%s) without a repartition across: hosts by its keys (%s) in between (only filters may stand between them)", u.Kind, u.ID, u.Type, strings.Join(keys, ", "))
			}
		}
		return ""
	}
	return walk(n)
}

func stringsField(cfg any, name string) []string {
	v, ok := field(cfg, name)
	if !ok || v.Kind() != reflect.Slice || v.Type().Elem().Kind() != reflect.String {
		return nil
	}
	return pathStrings(v)
}

func fieldString(cfg any, name string) string {
	v, ok := field(cfg, name)
	if !ok || v.Kind() != reflect.String {
		return ""
	}
	return v.String()
}

// needs are the node labels the graph's placement asks for.
func needs(g *engine.Graph) []Need {
	var out []Need
	add := func(n Need) {
		if !slices.ContainsFunc(out, func(o Need) bool { return o.Key == n.Key && o.Op == n.Op && o.Value == n.Value }) {
			out = append(out, n)
		}
	}
	pool := func(m buffers.PoolConfig, where string) {
		if m.Kind == "cxl" && strings.HasPrefix(m.Path, "/dev/dax") {
			add(Need{Key: topology.DAXLabel(filepath.Base(m.Path)), Op: "Exists", Why: where + " maps " + m.Path})
		}
		if m.Bind && m.Node >= 0 {
			add(Need{Key: topology.LabelNUMANodes, Op: "Gt", Value: strconv.Itoa(m.Node), Why: fmt.Sprintf("%s is bound to NUMA node %d", where, m.Node)})
		}
	}
	pool(g.Settings.Memory, "settings.memory")
	for _, n := range g.Nodes {
		if n.Memory != nil {
			pool(*n.Memory, n.ID+"'s memory")
		}
		if dv, ok := field(n.Config, "device"); ok && dv.Kind() == reflect.String && strings.HasPrefix(n.Type, "rdma") {
			if d := dv.String(); d != "" && d != "auto" {
				add(Need{Key: topology.RDMALabel(d), Op: "Exists", Why: fmt.Sprintf("%s uses RDMA device %s", n.ID, d)})
			}
		}
	}
	return out
}

func (j *Job) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(j.Dir, p)
}

// shared checks that path is inside one of the host paths (not the host
// path itself: a sink's staging directory goes next to its path, and must
// be inside the mount too).
func (j *Job) shared(path string) error {
	for _, h := range j.HostPaths {
		if strings.HasPrefix(path, h+"/") {
			return nil
		}
	}
	if len(j.HostPaths) == 0 {
		return fmt.Errorf("%s: settings.cluster.host_paths names no directory the workers share with the coordinator", path)
	}
	return fmt.Errorf("%s is under none of settings.cluster.host_paths (%s), so the workers would not see it", path, strings.Join(j.HostPaths, ", "))
}

// WorkerGraph makes g (the graph a worker parsed from j.Src) worker
// index's part of the run, for its attempt (a name unique to this try of
// this index, such as its pod's): shard index of j.Workers, paths made
// absolute, every file sink writing its part into the staging directory.
//
// peers connects the worker to the others for the exchanges across hosts
// (a Mesh); it may be nil when the run has none.
func (j *Job) WorkerGraph(g *engine.Graph, index int, attempt string, peers engine.Peers) error {
	if index < 0 || index >= j.Workers {
		return fmt.Errorf("cluster: worker %d of %d", index, j.Workers)
	}
	if attempt == "" || strings.ContainsAny(attempt, "/\x00") || attempt == "." || attempt == ".." {
		return fmt.Errorf("cluster: attempt name %q", attempt)
	}
	if j.Workers > 1 && len(j.Exchanges) > 0 && peers == nil {
		return fmt.Errorf("cluster: worker %d has no connections to the other workers for the exchanges across hosts (%s)", index, strings.Join(j.Exchanges, ", "))
	}
	g.Settings.Shard = engine.Shard{Index: index, Count: j.Workers, Peers: peers}
	for _, n := range g.Nodes {
		if tv, ok := field(n.Config, "table"); ok && n.Kind == engine.KindTransform && tv.Kind() == reflect.String && tv.String() != "" {
			tv.SetString(j.abs(tv.String()))
		}
		pv, ok := pathField(n.Config)
		if !ok {
			continue
		}
		switch {
		case n.Kind == engine.KindSource && pv.Kind() == reflect.Slice:
			for i := range pv.Len() {
				if f := pv.Index(i).String(); f != "-" {
					pv.Index(i).SetString(j.abs(f))
				}
			}
		case n.Kind == engine.KindSink:
			s, ok := j.sink(n.ID)
			if !ok {
				return fmt.Errorf("cluster: sink %s is not in the run's plan (a different pipeline file?)", n.ID)
			}
			pv.SetString(j.staged(s, index, attempt))
		}
	}
	return nil
}

func (j *Job) sink(id string) (SinkPart, bool) {
	i := slices.IndexFunc(j.Sinks, func(s SinkPart) bool { return s.ID == id })
	if i < 0 {
		return SinkPart{}, false
	}
	return j.Sinks[i], true
}

// stageRoot is where a run stages the output of sinks writing in s's
// directory.
func (j *Job) stageRoot(s SinkPart) string {
	return filepath.Join(filepath.Dir(s.Path), StagePrefix+j.RunID)
}

// reservedEnv are the variables a worker's pod sets itself: a pipeline
// that refers to them gets the worker's values.
var reservedEnv = []string{"POD_NAME", "NODE_NAME", "JOB_COMPLETION_INDEX", "OTEL_RESOURCE_ATTRIBUTES", "ZFLOW_TRACEPARENT", "ZFLOW_MESH_TOKEN"}

// StagePrefix starts the name of every staging directory.
const StagePrefix = ".zflow-stage-"

func (j *Job) staged(s SinkPart, index int, attempt string) string {
	return filepath.Join(j.stageRoot(s), s.ID, attempt, partName(s, index))
}

func partName(s SinkPart, index int) string { return fmt.Sprintf("part-%05d%s", index, s.Ext) }

// newRunID is zflow-<name>-<5 random>, a valid Kubernetes name of at most
// 40 characters (pod names add -<index>-<5>).
func newRunID(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	n := strings.Trim(b.String(), "-")
	if len(n) > 27 {
		n = strings.TrimRight(n[:27], "-")
	}
	if n == "" {
		n = "run"
	}
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	var r [5]byte
	_, _ = rand.Read(r[:])
	for i := range r {
		r[i] = letters[int(r[i])%len(letters)]
	}
	return "zflow-" + n + "-" + string(r[:])
}

// pathField is the config's parameter path: a string (a sink's file) or
// a []string (a source's files), settable.
func pathField(cfg any) (reflect.Value, bool) {
	v, ok := field(cfg, "path")
	if !ok || (v.Kind() != reflect.String && !(v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String)) {
		return reflect.Value{}, false
	}
	return v, true
}

func pathStrings(v reflect.Value) []string {
	if v.Kind() == reflect.String {
		return []string{v.String()}
	}
	out := make([]string, v.Len())
	for i := range out {
		out[i] = v.Index(i).String()
	}
	return out
}

// field finds the parameter named name (its zflow tag) in the config
// struct cfg points to, looking into embedded structs.
func field(cfg any, name string) (reflect.Value, bool) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	return structField(v.Elem(), name)
}

func structField(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("zflow"), ","); tag == name && f.IsExported() {
			return v.Field(i), true
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if fv, ok := structField(v.Field(i), name); ok {
				return fv, true
			}
		}
	}
	return reflect.Value{}, false
}
