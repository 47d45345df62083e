package engine

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/buffers"
)

// Graph is an uncompiled pipeline: what package pipelines builds from YAML,
// or what an embedder builds in Go.
type Graph struct {
	Name     string
	Settings Settings
	Nodes    []*Node
	// Info holds lines printed at the top of the plan (memory, backends):
	// facts the layers above chose, which the engine only shows.
	Info map[string]string
}

// Node is one operator in a Graph.
type Node struct {
	ID     string
	Kind   Kind
	Type   string   // registered operator name
	Config any      // pointer to the Spec's config type; nil means defaults
	Inputs []string // ids of the nodes feeding this one
	// ConfigFrom says how Compile treats Config: as given (made by the
	// Spec's NewConfig and checked by the caller, like package pipelines),
	// or to be completed with defaults and checked (a config written in Go).
	ConfigFrom ConfigFrom

	// Parallelism is the number of instances of an operator whose Spec is
	// Parallel. 0 is `auto`: a transform runs as many instances as
	// Settings.Threads allows (its output kept in input order unless
	// Unordered); a source or sink runs one instance, which keeps its order,
	// unless Unordered lets it split the work over as many; an operator that
	// is not Parallel runs one. Plan's description says what was chosen and
	// why.
	Parallelism int
	// Unordered lets parallel instances emit in completion order. By default
	// a parallel transform emits batches in the order it received them; a
	// parallel source or sink has no order to keep (each source instance
	// reads its own share), so Ordered there is an error.
	Unordered bool
	// Ordered asks for order explicitly; set by the layers above when the
	// user wrote it, so that a request the engine cannot honour is refused
	// rather than ignored.
	Ordered bool
	// Memory, if set, is where this node allocates: a Kind gives it a pool
	// of its own (for example shared memory, or another NUMA node); no Kind
	// keeps it in the run's pool under its own Budget.
	Memory *buffers.PoolConfig
}

// Plan is a compiled graph, ready to run (any number of times).
type Plan struct {
	Name     string
	Settings Settings
	Info     map[string]string
	nodes    []*planNode // topological order
	stdin    *Stdin
	stdio    [2][]string // ids of the nodes reading standard input, writing standard output
	byID     map[string]*planNode
	// threadsWhy says what set Settings.Threads.
	threadsWhy string
}

type planNode struct {
	*Node
	Spec        *Spec
	Factory     Factory
	Schema      *arrow.Schema // output; nil for sinks
	Parallelism int
	parallelWhy string // how Parallelism was chosen, for the plan
	pushdown    string // the predicate a source was given, and how it uses it
	projection  string // the columns a source reads of those it has, and how
	dictionary  string // the columns a source reads as dictionaries, and how
	Inputs      []*planNode
	Consumers   []*planNode
	badConfig   bool // its config was reported wrong: it is not built

	// lanes is the number of lanes of the node's inbox: its parallelism
	// when an input is an exchange, else 1 (one lane, shared).
	lanes int
	// lanesOut is, for an exchange, the lanes its LaneEmitter routes to:
	// the most instances one of its consumers runs (a consumer running
	// fewer reads lane k mod its count, which keeps a key's rows on one
	// instance).
	lanesOut int
	// partitionedBy is InstanceContext.PartitionedBy.
	partitionedBy []string
	// inPorts is, for each of Inputs, the output port of it this node
	// reads: 0 its main output, k its Spec's Outputs[k-1].
	inPorts []int
}

// inputSchema is the schema of what pn reads from its input i.
func (pn *planNode) inputSchema(i int) *arrow.Schema {
	in := pn.Inputs[i]
	if pn.inPorts[i] > 0 {
		if ps, ok := in.Factory.(PortSchemas); ok {
			return ps.OutputSchema(pn.inPorts[i])
		}
		return nil
	}
	return in.Schema
}

// inputName is how pn names its input i: the node's id, with ".port"
// for an output port other than the main one.
func (pn *planNode) inputName(i int) string {
	in := pn.Inputs[i]
	if k := pn.inPorts[i]; k > 0 {
		return in.ID + "." + in.Spec.Outputs[k-1]
	}
	return in.ID
}

// outputPort resolves an input written "node.port" to the node and the
// number of its output port; a message when node exists but has no such
// port, nil when there is no such node.
func (p *Plan) outputPort(ref string) (*planNode, int, string) {
	dot := strings.LastIndexByte(ref, '.')
	if dot < 0 {
		return nil, 0, ""
	}
	src, ok := p.byID[ref[:dot]]
	if !ok || src.Spec == nil {
		return nil, 0, ""
	}
	name := ref[dot+1:]
	if k := slices.Index(src.Spec.Outputs, name); k >= 0 {
		return src, k + 1, ""
	}
	if len(src.Spec.Outputs) == 0 {
		return nil, 0, fmt.Sprintf("input %q: %s %q has one output, no port %q (write %q)", ref, src.Spec.Name, src.ID, name, src.ID)
	}
	return nil, 0, fmt.Sprintf("input %q: %s %q has no output port %q; its ports: %s", ref, src.Spec.Name, src.ID, name, strings.Join(src.Spec.Outputs, ", "))
}

// unordered says the node's parallel instances need not keep the order of
// its input: the pipeline said ordered: false, or the operator has none.
func (n *planNode) unordered() bool { return n.Unordered || n.Spec.Unordered }

// CompileOptions tune Compile.
type CompileOptions struct {
	Registry *Registry // nil means DefaultRegistry
	// Stdin is what a source with path "-" reads; nil means os.Stdin. Its
	// Build may peek at it (see Stdin), and the plan's runs read it.
	Stdin io.Reader
}

// Compile checks g and computes every node's output schema. It reports every
// error it can find, as Errors of *NodeError, not just the first. It sets
// each node's Config to what its Build gets: NewConfig's for a nil one, the
// completed copy for a ConfigLiteral (see ConfigFrom).
func Compile(g *Graph, opts CompileOptions) (*Plan, error) {
	reg := opts.Registry
	if reg == nil {
		reg = DefaultRegistry
	}
	p := &Plan{Name: g.Name, Settings: g.Settings.withDefaults(), Info: g.Info, byID: map[string]*planNode{},
		stdin: NewStdin(opts.Stdin)}
	var errs Errors
	if g.Settings.Threads < 0 {
		errs = append(errs, &NodeError{Node: "settings", Field: "threads", Offset: -1,
			Msg: fmt.Sprintf("threads must be ≥ 1 (or 0 for the CPUs this process may use), got %d", g.Settings.Threads)})
	}
	if sh := g.Settings.Shard; sh.Count < 0 || sh.Index < 0 || (sh.Index > 0 && sh.Index >= sh.Count) {
		errs = append(errs, &NodeError{Node: "settings", Field: "shard", Offset: -1,
			Msg: fmt.Sprintf("shard %d of %d: want 0 ≤ index < count", sh.Index, sh.Count)})
	}
	threadsWhy := resolveThreads(&p.Settings)
	p.threadsWhy = threadsWhy
	if err := checkMemory(p.Settings.Memory); err != nil {
		errs = append(errs, &NodeError{Node: "settings", Field: "memory.arena", Offset: -1, Msg: err.Error()})
	}
	if m := p.Settings.Memory; m.Budget < 0 || m.SoftBudget < 0 || (m.Budget > 0 && m.SoftBudget > m.Budget) {
		errs = append(errs, &NodeError{Node: "settings", Field: "memory.budget", Offset: -1,
			Msg: fmt.Sprintf("budgets must be ≥ 0 and the soft budget at most the hard one (budget %d, soft budget %d)", m.Budget, m.SoftBudget)})
	}
	p.Info = maps.Clone(p.Info)
	if p.Info == nil {
		p.Info = map[string]string{}
	}
	if sh := g.Settings.Shard; sh.Sharded() {
		p.Info["shard"] = fmt.Sprintf("%d of %d (sources read their share; one that cannot split runs on shard 0)", sh.Index, sh.Count)
	}
	if _, ok := p.Info["memory"]; !ok {
		p.Info["memory"] = DescribeMemory(p.Settings.Memory)
	}
	nodeErr := func(n *Node, field string, format string, args ...any) {
		errs = append(errs, &NodeError{Node: n.ID, Field: field, Offset: -1, Msg: fmt.Sprintf(format, args...)})
	}
	var all []*planNode
	for _, n := range g.Nodes {
		if n.ID == "" {
			errs = append(errs, &NodeError{Node: "?", Offset: -1, Msg: "node without an id"})
			continue
		}
		if _, dup := p.byID[n.ID]; dup {
			nodeErr(n, "", "duplicate id %q (ids are shared by sources, operators and sinks)", n.ID)
			continue
		}
		pn := &planNode{Node: n, Parallelism: max(n.Parallelism, 1)}
		p.byID[n.ID] = pn
		all = append(all, pn)
		spec, err := reg.Lookup(n.Kind, n.Type)
		if err != nil {
			nodeErr(n, "type", "%s", err.Error())
			continue
		}
		pn.Spec = spec
		pn.Parallelism, pn.parallelWhy = autoParallelism(n, spec, p.Settings, threadsWhy)
		for _, fe := range prepareConfig(n, spec) {
			errs = append(errs, &NodeError{Node: n.ID, Field: fe.Field, Offset: fe.Offset, Msg: fe.Msg})
			pn.badConfig = true
		}
		if pn.Parallelism > 1 && !spec.Parallel {
			nodeErr(n, "parallelism", "%s %q keeps state and cannot run with parallelism %d", spec.Kind, spec.Name, n.Parallelism)
		}
		if n.Parallelism < 0 {
			nodeErr(n, "parallelism", "parallelism must be ≥ 1, got %d", n.Parallelism)
		}
		if n.Ordered && n.Unordered {
			nodeErr(n, "ordered", "both ordered and unordered asked")
		} else if n.Ordered && spec.Unordered {
			nodeErr(n, "ordered", "ordered: %s %q keeps no order of its input to keep", spec.Kind, spec.Name)
		} else if spec.PortEnds && n.Ordered && pn.Parallelism > 1 {
			nodeErr(n, "ordered", "ordered: %s %q has no input order to keep (it waits for one input before it reads another); use parallelism 1 for one stream in order of its probe input", spec.Kind, spec.Name)
		} else if spec.PortEnds {
			n.Unordered = true
		} else if n.Ordered && pn.Parallelism > 1 && spec.Kind != KindTransform {
			nodeErr(n, "ordered", "ordered: a parallel %s has no order to keep: each of its %d instances %s; use parallelism 1 for one ordered stream",
				spec.Kind, pn.Parallelism, map[Kind]string{KindSource: "reads its own share of the data", KindSink: "writes what it takes"}[spec.Kind])
		}
		if n.Memory != nil {
			if err := checkMemory(*n.Memory); err != nil {
				nodeErr(n, "memory.arena", "%s", err.Error())
			}
			if n.Memory.Budget < 0 || n.Memory.SoftBudget < 0 {
				nodeErr(n, "memory.budget", "a budget must be ≥ 0")
			}
		}
		if spec.Kind == KindSource && len(n.Inputs) > 0 {
			nodeErr(n, "inputs", "a source takes no inputs")
		} else if spec.Kind != KindSource {
			if len(n.Inputs) < spec.MinInputs {
				nodeErr(n, "inputs", "%s %q needs at least %d input(s), got %d", spec.Kind, spec.Name, spec.MinInputs, len(n.Inputs))
			} else if spec.MaxInputs >= 0 && len(n.Inputs) > spec.MaxInputs {
				nodeErr(n, "inputs", "%s %q takes at most %d input(s), got %d (use a union)", spec.Kind, spec.Name, spec.MaxInputs, len(n.Inputs))
			}
		}
	}
	ids := make([]string, 0, len(p.byID))
	for id := range p.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	// Wire inputs.
	for _, pn := range all {
		seen := map[string]bool{}
		for i, in := range pn.Node.Inputs {
			field := fmt.Sprintf("inputs.%d", i)
			src, ok := p.byID[in]
			port := 0
			if !ok {
				var perr string
				src, port, perr = p.outputPort(in)
				ok = src != nil
				if perr != "" {
					nodeErr(pn.Node, field, "%s", perr)
					continue
				}
			}
			switch {
			case !ok:
				msg := fmt.Sprintf("input %q does not exist", in)
				if s := Suggest(in, ids); s != "" {
					msg += fmt.Sprintf(", did you mean %q?", s)
				}
				nodeErr(pn.Node, field, "%s", msg)
				continue
			case seen[in] && (pn.Spec == nil || !pn.Spec.SameInputTwice):
				nodeErr(pn.Node, field, "input %q is listed twice", in)
				continue
			case src == pn:
				nodeErr(pn.Node, field, "node %q cannot be its own input", in)
				continue
			case src.Spec != nil && src.Spec.Kind == KindSink:
				nodeErr(pn.Node, field, "input %q is a sink, which has no output", in)
				continue
			}
			seen[in] = true
			pn.Inputs = append(pn.Inputs, src)
			pn.inPorts = append(pn.inPorts, port)
			src.Consumers = append(src.Consumers, pn)
		}
	}
	for _, pn := range all {
		wireLanes(pn, nodeErr)
	}
	order, cycle := topoSort(all)
	if cycle != nil {
		first := cycle[0]
		names := make([]string, len(cycle))
		for i, c := range cycle {
			names[i] = c.ID
		}
		nodeErr(first.Node, "inputs", "cycle: %s -> %s", strings.Join(names, " -> "), first.ID)
		return nil, errs
	}
	for _, pn := range order {
		if pn.Spec != nil && pn.Spec.Kind != KindSink && len(pn.Consumers) == 0 {
			nodeErr(pn.Node, "", "the output of %s %q is not used by any operator or sink", pn.Spec.Kind, pn.ID)
		}
	}
	clashes, stdio := pathClashes(order)
	errs = append(errs, clashes...)
	p.stdio = stdio
	// Build in topological order so input schemas are known.
	failed := map[*planNode]bool{}
	for _, pn := range order {
		if pn.Spec == nil || pn.badConfig {
			failed[pn] = true
			continue
		}
		skip := len(pn.Inputs) != len(pn.Node.Inputs)
		for _, in := range pn.Inputs {
			skip = skip || failed[in] || in.Schema == nil
		}
		if skip {
			failed[pn] = true // an input already failed and reported
			continue
		}
		if err := p.build(pn, false); err != nil {
			failed[pn] = true
			errs = append(errs, err...)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	rebuild := func(pn *planNode) error { // on narrower or dictionary columns
		if errs := p.build(pn, true); len(errs) > 0 {
			return errs
		}
		return nil
	}
	p.pushProjections(order, rebuild)
	pushPredicates(order)
	p.pushDictionaries(order, rebuild)
	p.nodes = order
	return p, nil
}

// wireLanes sets the lanes of pn's inbox and, for an exchange, of its
// output; the consumers of an exchange keep no input order.
func wireLanes(pn *planNode, nodeErr func(n *Node, field string, format string, args ...any)) {
	pn.lanes = 1
	if pn.Spec != nil && pn.Spec.Exchange {
		pn.lanesOut = 1
		for _, c := range pn.Consumers {
			pn.lanesOut = max(pn.lanesOut, c.Parallelism)
		}
	}
	for _, in := range pn.Inputs {
		if in.Spec == nil || !in.Spec.Exchange || pn.Parallelism < 2 {
			continue
		}
		pn.lanes = pn.Parallelism
		if pn.Ordered {
			nodeErr(pn.Node, "ordered", "ordered: its input %q is an exchange, which sends each of its %d instances rows of its own: there is no one order to keep", in.ID, pn.Parallelism)
		}
		pn.Unordered = true
	}
}

// partitionedBy is the columns every input of pn is hash-exchanged by,
// when they all are by the same ones and pn runs several instances.
func partitionedBy(pn *planNode) []string {
	if pn.lanes < 2 {
		return nil
	}
	var keys []string
	for i, in := range pn.Inputs {
		k, ok := in.Factory.(ExchangeKeyer)
		if !ok || len(k.ExchangeKeys()) == 0 || (i > 0 && !slices.Equal(keys, k.ExchangeKeys())) {
			return nil
		}
		keys = k.ExchangeKeys()
	}
	return keys
}

// build builds pn on its inputs' schemas, setting its Factory and Schema;
// narrowed is BuildContext.Narrowed.
func (p *Plan) build(pn *planNode, narrowed bool) Errors {
	pn.partitionedBy = partitionedBy(pn) // its inputs are built
	bc := &BuildContext{Node: pn.ID, Settings: p.Settings, Stdin: p.stdin, Narrowed: narrowed, PartitionedBy: pn.partitionedBy}
	for i := range pn.Inputs {
		bc.Inputs = append(bc.Inputs, pn.inputSchema(i))
		bc.InputIDs = append(bc.InputIDs, pn.inputName(i))
	}
	for i, s := range bc.Inputs {
		if s == nil {
			return Errors{&NodeError{Node: pn.ID, Offset: -1, Msg: fmt.Sprintf("input %q has no schema (a bug in operator %q: it declares output ports but no PortSchemas)", bc.InputIDs[i], pn.Inputs[i].Spec.Name)}}
		}
	}
	f, err := buildNode(pn, bc)
	if err != nil {
		return nodeErrors(pn.ID, err)
	}
	if pn.Spec.Kind != KindSink && f.Schema() == nil {
		return Errors{&NodeError{Node: pn.ID, Offset: -1, Msg: fmt.Sprintf("operator %q built no output schema (a bug in the operator)", pn.Spec.Name)}}
	}
	pn.Factory, pn.Schema = f, f.Schema()
	return nil
}

func buildNode(pn *planNode, bc *BuildContext) (f Factory, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("operator %q panicked while compiling: %v (a bug)", pn.Spec.Name, r)
		}
	}()
	return pn.Spec.Build(bc, pn.Node.Config)
}

// nodeErrors turns what Build returned into NodeErrors.
func nodeErrors(node string, err error) []error {
	var out []error
	var list interface{ Unwrap() []error }
	if asList(err, &list) {
		for _, e := range list.Unwrap() {
			out = append(out, nodeErrors(node, e)...)
		}
		return out
	}
	if fe, ok := err.(*FieldError); ok {
		return []error{&NodeError{Node: node, Field: fe.Field, Offset: fe.Offset, Msg: fe.Msg}}
	}
	if ne, ok := err.(*NodeError); ok {
		return []error{ne}
	}
	return []error{&NodeError{Node: node, Offset: -1, Msg: err.Error()}}
}

func asList(err error, list *interface{ Unwrap() []error }) bool {
	l, ok := err.(interface{ Unwrap() []error })
	if ok {
		*list = l
	}
	return ok
}

// topoSort orders nodes so every node comes after its inputs; on a cycle it
// returns the nodes of one cycle.
func topoSort(nodes []*planNode) (order, cycle []*planNode) {
	const (
		white = iota
		grey
		black
	)
	color := map[*planNode]int{}
	var stack []*planNode
	var visit func(n *planNode) bool
	visit = func(n *planNode) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, in := range n.Inputs {
			switch color[in] {
			case grey:
				i := slices.Index(stack, in)
				cycle = slices.Clone(stack[i:])
				return false
			case white:
				if !visit(in) {
					return false
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		order = append(order, n)
		return true
	}
	for _, n := range nodes {
		if color[n] == white && !visit(n) {
			return nil, cycle
		}
	}
	return order, nil
}

// Schema returns the output schema of node id (nil for sinks or unknown ids).
func (p *Plan) Schema(id string) *arrow.Schema {
	if n := p.byID[id]; n != nil {
		return n.Schema
	}
	return nil
}

// NodeIDs lists the plan's nodes in topological order.
func (p *Plan) NodeIDs() []string {
	out := make([]string, len(p.nodes))
	for i, n := range p.nodes {
		out[i] = n.ID
	}
	return out
}

// pathClashes finds sinks that would write the same file, and sinks that
// would write a file a source of the same run reads: each would destroy
// the other's data. Both nodes get an error at their path, naming the
// other. Paths are compared absolute and cleaned, and by file identity
// when both exist (a symlink or hard link to the same file).
func pathClashes(order []*planNode) ([]error, [2][]string) {
	type use struct {
		n        *planNode
		raw, abs string
		info     os.FileInfo
	}
	var sinks, sources []use
	var stdin, stdout []*planNode
	for _, pn := range order {
		if pn.Spec == nil || pn.Spec.Kind == KindTransform {
			continue
		}
		if su, ok := pn.Config.(StdioUser); ok {
			in, out := su.UsesStdio()
			if in {
				stdin = append(stdin, pn)
			}
			if out {
				stdout = append(stdout, pn)
			}
		}
		for _, p := range configPaths(pn.Config) {
			if p == "" {
				continue
			}
			if p == StdPath {
				if pn.Spec.Kind == KindSink {
					stdout = append(stdout, pn)
				} else {
					stdin = append(stdin, pn)
				}
				continue
			}
			abs, err := filepath.Abs(p)
			if err != nil {
				abs = filepath.Clean(p)
			}
			u := use{n: pn, raw: p, abs: abs}
			u.info, _ = os.Stat(abs)
			if pn.Spec.Kind == KindSink {
				sinks = append(sinks, u)
			} else {
				sources = append(sources, u)
			}
		}
	}
	same := func(a, b use) bool {
		return a.abs == b.abs || (a.info != nil && b.info != nil && os.SameFile(a.info, b.info))
	}
	var errs []error
	clash := func(n *planNode, msg string, args ...any) {
		errs = append(errs, &NodeError{Node: n.ID, Field: "path", Offset: -1, Msg: fmt.Sprintf(msg, args...)})
	}
	stdio := func(nodes []*planNode, what, verb string) {
		nodes = slices.CompactFunc(nodes, func(a, b *planNode) bool { return a == b })
		for _, a := range nodes {
			for _, b := range nodes {
				if a != b {
					errs = append(errs, &NodeError{Node: a.ID, Field: stdioField(a), Offset: -1,
						Msg: fmt.Sprintf("only one node of a pipeline may %s %s, and %s %q %ss it too", verb, what, b.Spec.Kind, b.ID, verb)})
					break
				}
			}
		}
	}
	stdio(stdin, "standard input", "read")
	stdio(stdout, "standard output", "write")
	var ids [2][]string
	for _, n := range stdin {
		ids[0] = append(ids[0], n.ID)
	}
	for _, n := range stdout {
		ids[1] = append(ids[1], n.ID)
	}
	for i, a := range sinks {
		for _, b := range sinks[i+1:] {
			if same(a, b) {
				clash(a.n, "sink %q writes the same file (%s): each would overwrite the other", b.n.ID, b.raw)
				clash(b.n, "sink %q writes the same file (%s): each would overwrite the other", a.n.ID, a.raw)
			}
		}
		reported := map[*planNode]bool{} // one error per source, however many files it reads
		for _, src := range sources {
			switch {
			case reported[src.n]:
			case same(a, src):
				reported[src.n] = true
				clash(a.n, "source %q reads this file (%s): the sink would replace it while it is read", src.n.ID, src.raw)
				clash(src.n, "sink %q writes this file (%s): it would replace it while it is read", a.n.ID, a.raw)
			case a.info != nil && a.info.IsDir() && strings.HasPrefix(src.abs, a.abs+string(filepath.Separator)):
				// A partitioned sink replaces the whole directory.
				reported[src.n] = true
				clash(a.n, "source %q reads %s, inside this directory: the sink would replace it while it is read", src.n.ID, src.raw)
				clash(src.n, "sink %q writes the directory %s, which holds %s: it would replace it while it is read", a.n.ID, a.raw, src.raw)
			}
		}
	}
	return errs, ids
}

// stdioField is where a node's use of standard input or output is placed:
// its path, or the node itself when it has no path parameter (stdout).
func stdioField(n *planNode) string {
	if _, ok := n.Config.(StdioUser); ok && len(configPaths(n.Config)) == 0 {
		return ""
	}
	return "path"
}

// StdinNodes are the ids of the nodes that read standard input (at most
// one in a compiled plan).
func (p *Plan) StdinNodes() []string { return p.stdio[0] }

// StdoutNodes are the ids of the nodes that write standard output: a sink
// with path "-" or a stdout sink (at most one in a compiled plan).
func (p *Plan) StdoutNodes() []string { return p.stdio[1] }
