package engine

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// wideSchema is the wide source's: column k of row j holds k*1000+j.
var wideSchema = arrow.NewSchema([]arrow.Field{
	{Name: "a", Type: arrow.PrimitiveTypes.Int64},
	{Name: "b", Type: arrow.PrimitiveTypes.Int64},
	{Name: "c", Type: arrow.PrimitiveTypes.Int64},
}, nil)

type wideConfig struct {
	Rows    int  `zflow:"rows" doc:"rows"`
	Decline bool `zflow:"decline" doc:"refuse projections"`
	// Made counts the column arrays built, to see the projection save work.
	made int
}

// wideFactory is a Projectable source.
type wideFactory struct {
	cfg  *wideConfig
	cols []int // of wideSchema, in order
}

func (f *wideFactory) Schema() *arrow.Schema {
	fields := make([]arrow.Field, len(f.cols))
	for i, c := range f.cols {
		fields[i] = wideSchema.Field(c)
	}
	return arrow.NewSchema(fields, nil)
}

func (f *wideFactory) TakeProjection(cols []string) string {
	if f.cfg.Decline {
		return ""
	}
	f.cols = f.cols[:0]
	for i, fl := range wideSchema.Fields() {
		if cols == nil || slices.Contains(cols, fl.Name) {
			f.cols = append(f.cols, i)
		}
	}
	return "the others are not made"
}

func (f *wideFactory) New(ic *InstanceContext) (any, error) {
	return &wideSource{f: f, mem: ic.Alloc}, nil
}

type wideSource struct {
	f   *wideFactory
	mem memory.Allocator
}

func (s *wideSource) Run(ctx context.Context, out Emitter) error {
	var arrs []arrow.Array
	for _, c := range s.f.cols {
		b := array.NewInt64Builder(s.mem)
		for j := range s.f.cfg.Rows {
			b.Append(int64(c*1000 + j))
		}
		arrs = append(arrs, b.NewArray())
		b.Release()
		s.f.cfg.made++
	}
	rec := array.NewRecordBatch(s.f.Schema(), arrs, int64(s.f.cfg.Rows))
	for _, a := range arrs {
		a.Release()
	}
	return out.Emit(rec)
}

type pickConfig struct {
	Cols []string `zflow:"cols" doc:"columns kept"`
}

// pickFactory keeps some columns of its one input (a ColumnUser), or,
// without cols, passes all of every input on, which must agree, reading
// only what its consumers read.
type pickFactory struct {
	cols   []int
	names  []string
	schema *arrow.Schema
}

func (f *pickFactory) Schema() *arrow.Schema { return f.schema }

func (f *pickFactory) InputColumns(port int, out []string) []string {
	if f.cols == nil {
		return out
	}
	return f.names
}

func (f *pickFactory) New(*InstanceContext) (any, error) { return f, nil }

func (f *pickFactory) Process(ctx context.Context, port int, in arrow.RecordBatch, out Emitter) error {
	if f.cols == nil {
		in.Retain()
		return out.Emit(in)
	}
	arrs := make([]arrow.Array, len(f.cols))
	for i, c := range f.cols {
		arrs[i] = in.Column(c)
	}
	return out.Emit(array.NewRecordBatch(f.schema, arrs, in.NumRows()))
}

func projectionRegistry() *Registry {
	r := testRegistry()
	r.MustRegister(Spec{
		Name: "wide", Kind: KindSource,
		NewConfig: func() any { return &wideConfig{Rows: 10} },
		Build: func(bc *BuildContext, cfg any) (Factory, error) {
			return &wideFactory{cfg: cfg.(*wideConfig), cols: []int{0, 1, 2}}, nil
		},
	})
	r.MustRegister(Spec{
		Name: "pick", Kind: KindTransform, MinInputs: 1, MaxInputs: -1,
		NewConfig: func() any { return &pickConfig{} },
		Build: func(bc *BuildContext, cfg any) (Factory, error) {
			c := cfg.(*pickConfig)
			in := bc.Inputs[0]
			if c.Cols == nil {
				for i, s := range bc.Inputs[1:] {
					if !s.Equal(in) {
						return nil, Errf("inputs", "input %d has other columns", i+1)
					}
				}
				return &pickFactory{schema: in}, nil
			}
			f := &pickFactory{names: c.Cols, cols: []int{}}
			var fields []arrow.Field
			for _, name := range c.Cols {
				idx := in.FieldIndices(name)
				if len(idx) != 1 {
					return nil, Errf("cols", "no column %q", name)
				}
				f.cols = append(f.cols, idx[0])
				fields = append(fields, in.Field(idx[0]))
			}
			f.schema = arrow.NewSchema(fields, nil)
			return f, nil
		},
	})
	return r
}

// projNode is a node of a TestProjection graph.
type projNode struct {
	id, typ string
	inputs  []string
	cfg     any
}

func projInputs(nodes []projNode, id string) []string {
	for _, n := range nodes {
		if n.id == id {
			return n.inputs
		}
	}
	return nil
}

func TestProjection(t *testing.T) {
	type node = projNode
	cases := []struct {
		name    string
		nodes   []node
		columns map[string]string // source id → its plan columns line ("" none)
		made    map[string]int    // source id → column arrays it built
		info    string            // in the plan's projection info
	}{
		{name: "pick one", nodes: []node{
			{"src", "wide", nil, &wideConfig{Rows: 10}},
			{"p", "pick", []string{"src"}, &pickConfig{Cols: []string{"b"}}},
			{"out", "collect", []string{"p"}, &collectConfig{}},
		}, columns: map[string]string{"src": "1 of 3 (projection: b): the others are not made"}, made: map[string]int{"src": 1}},
		{name: "sink reads all", nodes: []node{
			{"src", "wide", nil, &wideConfig{Rows: 10}},
			{"out", "collect", []string{"src"}, &collectConfig{}},
		}, columns: map[string]string{"src": ""}, made: map[string]int{"src": 3}},
		{name: "fan-out reads the union", nodes: []node{
			{"src", "wide", nil, &wideConfig{Rows: 10}},
			{"p1", "pick", []string{"src"}, &pickConfig{Cols: []string{"c"}}},
			{"p2", "pick", []string{"src"}, &pickConfig{Cols: []string{"a"}}},
			{"o1", "collect", []string{"p1"}, &collectConfig{}},
			{"o2", "collect", []string{"p2"}, &collectConfig{}},
		}, columns: map[string]string{"src": "2 of 3 (projection: a, c): the others are not made"}, made: map[string]int{"src": 2}},
		{name: "fan-out to a sink reads all", nodes: []node{
			{"src", "wide", nil, &wideConfig{Rows: 10}},
			{"p1", "pick", []string{"src"}, &pickConfig{Cols: []string{"c"}}},
			{"o1", "collect", []string{"p1"}, &collectConfig{}},
			{"o2", "collect", []string{"src"}, &collectConfig{}},
		}, columns: map[string]string{"src": ""}, made: map[string]int{"src": 3}},
		{name: "through a pass-through", nodes: []node{
			{"src", "wide", nil, &wideConfig{Rows: 10}},
			{"all", "pick", []string{"src"}, &pickConfig{}},
			{"p", "pick", []string{"all"}, &pickConfig{Cols: []string{"c", "a"}}},
			{"out", "collect", []string{"p"}, &collectConfig{}},
		}, columns: map[string]string{"src": "2 of 3 (projection: a, c): the others are not made"}, made: map[string]int{"src": 2}},
		{name: "an operator that does not say reads all", nodes: []node{
			{"src", "wide", nil, &wideConfig{Rows: 10}},
			{"x", "pass", []string{"src"}, &passConfig{}},
			{"p", "pick", []string{"x"}, &pickConfig{Cols: []string{"c"}}},
			{"out", "collect", []string{"p"}, &collectConfig{}},
		}, columns: map[string]string{"src": ""}, made: map[string]int{"src": 3}},
		{name: "none used: the first column", nodes: []node{
			{"src", "wide", nil, &wideConfig{Rows: 10}},
			{"p", "pick", []string{"src"}, &pickConfig{Cols: []string{}}},
			{"out", "collect", []string{"p"}, &collectConfig{}},
		}, columns: map[string]string{"src": "1 of 3 (projection: a): the others are not made"}, made: map[string]int{"src": 1}},
		{name: "a declining source next to a narrowed one: all restored", nodes: []node{
			{"s1", "wide", nil, &wideConfig{Rows: 10}},
			{"s2", "wide", nil, &wideConfig{Rows: 10, Decline: true}},
			{"u", "pick", []string{"s1", "s2"}, &pickConfig{}},
			{"p", "pick", []string{"u"}, &pickConfig{Cols: []string{"b"}}},
			{"out", "collect", []string{"p"}, &collectConfig{}},
		}, columns: map[string]string{"s1": "", "s2": ""}, made: map[string]int{"s1": 3, "s2": 3},
			info: "off: u could not be built on the narrower columns"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &Graph{Name: "proj"}
			sinks := map[string]*collectConfig{}
			for _, n := range tc.nodes {
				kind := KindTransform
				switch n.typ {
				case "wide":
					kind = KindSource
				case "collect":
					kind = KindSink
					sinks[n.id] = n.cfg.(*collectConfig)
				}
				g.Nodes = append(g.Nodes, &Node{ID: n.id, Kind: kind, Type: n.typ, Inputs: n.inputs, Config: n.cfg})
			}
			p, err := Compile(g, CompileOptions{Registry: projectionRegistry()})
			if err != nil {
				t.Fatal(err)
			}
			info := p.Describe()
			for _, ni := range info.Nodes {
				if want, ok := tc.columns[ni.ID]; ok && ni.Columns != want {
					t.Errorf("%s columns: %q, want %q", ni.ID, ni.Columns, want)
				}
			}
			if got := info.Info["projection"]; !strings.HasPrefix(got, tc.info) || (tc.info == "") != (got == "") {
				t.Errorf("projection info %q, want %q…", got, tc.info)
			}
			var text strings.Builder
			if err := p.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for id, want := range tc.columns {
				if want != "" && !strings.Contains(text.String(), "columns: "+want) {
					t.Errorf("the plan does not show %s's columns:\n%s", id, text.String())
				}
			}
			mem := newCountingAlloc()
			if _, err := p.Run(context.Background(), RunOptions{Alloc: mem}); err != nil {
				t.Fatal(err)
			}
			checkNoLeaks(t, mem)
			for _, n := range tc.nodes {
				if want, ok := tc.made[n.id]; ok {
					if got := n.cfg.(*wideConfig).made; got != want {
						t.Errorf("%s made %d columns, want %d", n.id, got, want)
					}
				}
			}
			for id, s := range sinks {
				if s.state != "committed" || s.rows == 0 {
					t.Errorf("sink %s: state %q, %d rows", id, s.state, s.rows)
				}
			}
			// What the picks emitted: their first column's first value
			// names the source column (k*1000), whatever was narrowed.
			for _, n := range tc.nodes {
				pc, ok := n.cfg.(*pickConfig)
				if !ok || len(pc.Cols) == 0 {
					continue
				}
				for id, s := range sinks {
					if slices.Contains(projInputs(tc.nodes, id), n.id) {
						want := int64(strings.Index("abc", pc.Cols[0]) * 1000)
						if len(s.got) == 0 || s.got[0] != want {
							t.Errorf("sink %s got first values %v, want %d (column %s)", id, s.got, want, pc.Cols[0])
						}
					}
				}
			}
		})
	}
}
