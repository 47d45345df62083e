package engine

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// PlanNodeInfo is the printable description of one compiled node.
type PlanNodeInfo struct {
	ID          string   `json:"id"`
	Kind        string   `json:"kind"`
	Type        string   `json:"type"`
	Inputs      []string `json:"inputs,omitempty"`
	Parallelism int      `json:"parallelism"`
	// ParallelismWhy says how Parallelism was chosen: "auto: …" with the
	// CPU budget, or why auto kept one instance, or "set in the pipeline".
	ParallelismWhy string `json:"parallelism_reason,omitempty"`
	Ordered        bool   `json:"ordered"`
	Detail         string `json:"detail,omitempty"`
	Memory         string `json:"memory,omitempty"` // the node's own memory, if it has a memory: block
	IO             string `json:"io,omitempty"`     // the storage backend of a file source or sink, and why (IODescriber)
	// Pushdown is the filter predicate a source was given, and how it
	// uses it (PredicateTaker).
	Pushdown string `json:"pushdown,omitempty"`
	// Spill says what the node may spill and where (SpillDescriber).
	Spill string `json:"spill,omitempty"`
	// Columns is, for a source that reads fewer columns than it has
	// because its consumers use no more (Projectable), how many of them it
	// reads, which, and how it skips the others.
	Columns string `json:"columns,omitempty"`
	// Dictionaries names the columns a source reads as dictionaries
	// because its consumers take them so (DictionarySource), and how.
	Dictionaries string `json:"dictionaries,omitempty"`
	// Lanes says, for an exchange, how many lanes it routes batches to,
	// and for a node fed by one, that each instance reads its own lane
	// (and by which columns the rows were hashed, if they were).
	Lanes  string      `json:"lanes,omitempty"`
	Schema []FieldInfo `json:"schema,omitempty"`
}

// FieldInfo is one column of a schema.
type FieldInfo struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
}

// PlanInfo is the printable description of a plan.
type PlanInfo struct {
	Name         string `json:"name"`
	BatchRows    int    `json:"batch_rows"`
	EdgeCapacity int    `json:"edge_capacity"`
	// Threads is the most instances `parallelism: auto` gives an operator,
	// and ThreadsWhy what set it.
	Threads    int               `json:"threads"`
	ThreadsWhy string            `json:"threads_reason"`
	Info       map[string]string `json:"info,omitempty"`
	Nodes      []PlanNodeInfo    `json:"nodes"`
}

// Describe returns the plan as data (for JSON and for tests).
func (p *Plan) Describe() PlanInfo {
	pi := PlanInfo{Name: p.Name, BatchRows: p.Settings.BatchRows, EdgeCapacity: p.Settings.EdgeCapacity, Info: p.Info,
		Threads: p.Settings.Threads, ThreadsWhy: p.threadsWhy}
	for _, n := range p.nodes {
		ni := PlanNodeInfo{
			ID: n.ID, Kind: n.Spec.Kind.String(), Type: n.Spec.Name,
			Parallelism: n.Parallelism, ParallelismWhy: n.parallelWhy, Pushdown: n.pushdown, Columns: n.projection, Dictionaries: n.dictionary, Ordered: n.Parallelism == 1 || (n.Spec.Kind == KindTransform && !n.unordered()),
			Schema: schemaInfo(n.Schema),
		}
		if n.Memory != nil {
			ni.Memory = DescribeMemory(*n.Memory)
		}
		for i := range n.Inputs {
			ni.Inputs = append(ni.Inputs, n.inputName(i))
		}
		if d, ok := n.Factory.(Describer); ok {
			ni.Detail = d.Describe()
		}
		ni.Lanes = describeLanes(n)
		if d, ok := n.Factory.(IODescriber); ok {
			ni.IO = d.DescribeIO()
		}
		if d, ok := n.Factory.(SpillDescriber); ok {
			ni.Spill = d.DescribeSpill()
		}
		pi.Nodes = append(pi.Nodes, ni)
	}
	return pi
}

// describeLanes is PlanNodeInfo.Lanes.
func describeLanes(n *planNode) string {
	var parts []string
	if n.Spec.Exchange {
		var to []string
		for _, c := range n.Consumers {
			to = append(to, fmt.Sprintf("%s ×%d", c.ID, c.Parallelism))
		}
		parts = append(parts, fmt.Sprintf("routes to %d lane(s), lane k read by instance k of %s", n.lanesOut, strings.Join(to, ", ")))
	}
	if n.lanes > 1 {
		s := fmt.Sprintf("each of its %d instances reads a lane of its own", n.lanes)
		if len(n.partitionedBy) > 0 {
			s += fmt.Sprintf("; the rows of one value of (%s) all reach the same instance", strings.Join(n.partitionedBy, ", "))
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func schemaInfo(s *arrow.Schema) []FieldInfo {
	if s == nil {
		return nil
	}
	out := make([]FieldInfo, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = FieldInfo{Name: f.Name, Type: f.Type.String(), Nullable: f.Nullable}
	}
	return out
}

// WriteText prints the plan for people: nodes in topological order, each with
// its inputs, parallelism, detail and output schema.
func (p *Plan) WriteText(w io.Writer) error {
	pi := p.Describe()
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %q: %d nodes, batch_rows=%d, edge_capacity=%d batches\n",
		pi.Name, len(pi.Nodes), pi.BatchRows, pi.EdgeCapacity)
	fmt.Fprintf(&b, "  threads: %s\n", pi.ThreadsWhy)
	keys := make([]string, 0, len(pi.Info))
	for k := range pi.Info {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %s\n", k, pi.Info[k])
	}
	for i, n := range pi.Nodes {
		last := i == len(pi.Nodes)-1
		branch, cont := "├─", "│ "
		if last {
			branch, cont = "└─", "  "
		}
		fmt.Fprintf(&b, "%s %s  [%s %s", branch, n.ID, n.Kind, n.Type)
		if n.Parallelism > 1 {
			order := "ordered"
			switch {
			case n.Kind == KindSource.String():
				order = "unordered, each instance reads its own share"
			case n.Kind == KindSink.String():
				order = "unordered, each instance writes what it takes"
			case !n.Ordered:
				order = "unordered"
			}
			fmt.Fprintf(&b, " ×%d %s", n.Parallelism, order)
		}
		b.WriteString("]")
		if len(n.Inputs) > 0 {
			fmt.Fprintf(&b, " ← %s", strings.Join(n.Inputs, ", "))
		}
		b.WriteString("\n")
		if n.Detail != "" {
			fmt.Fprintf(&b, "%s    %s\n", cont, n.Detail)
		}
		if w := n.ParallelismWhy; w != "" && w != "auto: "+pi.ThreadsWhy { // the common case is the threads line
			fmt.Fprintf(&b, "%s    parallelism: %s\n", cont, w)
		}
		if n.Memory != "" {
			fmt.Fprintf(&b, "%s    memory: %s\n", cont, n.Memory)
		}
		if n.IO != "" {
			fmt.Fprintf(&b, "%s    io: %s\n", cont, n.IO)
		}
		if n.Pushdown != "" {
			fmt.Fprintf(&b, "%s    pushdown: %s\n", cont, n.Pushdown)
		}
		if n.Columns != "" {
			fmt.Fprintf(&b, "%s    columns: %s\n", cont, n.Columns)
		}
		if n.Dictionaries != "" {
			fmt.Fprintf(&b, "%s    dictionaries: %s\n", cont, n.Dictionaries)
		}
		if n.Spill != "" {
			fmt.Fprintf(&b, "%s    spill: %s\n", cont, n.Spill)
		}
		if n.Lanes != "" {
			fmt.Fprintf(&b, "%s    lanes: %s\n", cont, n.Lanes)
		}
		if len(n.Schema) > 0 {
			cols := make([]string, len(n.Schema))
			for j, f := range n.Schema {
				cols[j] = f.Name + " " + f.Type
				if !f.Nullable {
					cols[j] += " not null"
				}
			}
			fmt.Fprintf(&b, "%s    schema: %s\n", cont, strings.Join(cols, ", "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteDOT prints the plan as a Graphviz digraph.
func (p *Plan) WriteDOT(w io.Writer) error {
	pi := p.Describe()
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n", pi.Name)
	shape := map[string]string{"source": "invhouse", "transform": "box", "sink": "house"}
	for _, n := range pi.Nodes {
		label := fmt.Sprintf("%s\\n%s", n.ID, n.Type)
		if n.Parallelism > 1 {
			label += fmt.Sprintf(" ×%d", n.Parallelism)
		}
		if n.Detail != "" {
			label += "\\n" + strings.ReplaceAll(n.Detail, `"`, `\"`)
		}
		fmt.Fprintf(&b, "  %q [label=\"%s\", shape=%s];\n", n.ID, label, shape[n.Kind])
	}
	ids := map[string]bool{}
	for _, n := range pi.Nodes {
		ids[n.ID] = true
	}
	for _, n := range pi.Nodes {
		for _, in := range n.Inputs {
			if dot := strings.LastIndexByte(in, '.'); !ids[in] && dot > 0 { // an output port
				fmt.Fprintf(&b, "  %q -> %q [label=%q, style=dashed];\n", in[:dot], n.ID, in[dot+1:])
				continue
			}
			fmt.Fprintf(&b, "  %q -> %q;\n", in, n.ID)
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the plan as JSON (PlanInfo).
func (p *Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p.Describe())
}
