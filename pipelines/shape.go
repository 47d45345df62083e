package pipelines

import (
	"errors"
	"strings"

	"github.com/zflowdev/zflow/engine"
)

// The shape check: Parse runs engine.Compile on its graph with every Build
// replaced by a stub, so that the engine, the one authority on graphs,
// reports unknown types, missing, dangling, duplicate and self inputs,
// inputs that are sinks, input counts, parallelism on stateful operators,
// cycles and unused outputs, while no operator is built (no file is opened,
// no expression compiled). A node whose type or parameters were already
// found wrong (unknown types included: Parse reports them, with the same
// message as the engine) takes a placeholder type, so that it neither repeats those
// errors nor hides the graph errors around it.

// placeholderType is the type given to broken nodes in the shape check.
const placeholderType = "zflow_invalid_node"

var errShapeOnly = errors.New("pipelines: the shape check builds no operator")

func stubBuild(*engine.BuildContext, any) (engine.Factory, error) { return nil, errShapeOnly }

// shapeCheck adds the graph errors to b.e.
func (b *graphBuilder) shapeCheck() {
	p := b.p
	if p.Graph == nil || len(p.Graph.Nodes) == 0 || b.incomplete {
		return // graph errors of a partial graph would mostly be wrong
	}
	reg := engine.NewRegistry()
	for _, s := range p.reg.Specs() {
		c := *s
		c.Build = stubBuild
		if err := reg.Register(c); err != nil {
			panic(err)
		}
	}
	for _, sec := range sections {
		_ = reg.Register(engine.Spec{
			Name: placeholderType, Kind: sec.kind, Parallel: true, MinInputs: 0, MaxInputs: -1,
			NewConfig: func() any { return &struct{}{} }, Build: stubBuild,
		})
	}
	g := &engine.Graph{Name: p.Graph.Name, Settings: p.Graph.Settings}
	for _, n := range p.Graph.Nodes {
		c := *n
		if b.broken[n.ID] {
			// Its own errors are reported already: keep only its inputs.
			c.Type, c.Config, c.Parallelism = placeholderType, nil, 0
		}
		if b.badInputs[n.ID] {
			c.Inputs = nil
		}
		g.Nodes = append(g.Nodes, &c)
	}
	_, err := compileSafely(g, reg)
	if err == nil {
		return
	}
	nes := flattenNodeErrors(err)
	for _, ne := range nes {
		if strings.HasPrefix(ne.Field, "inputs") && strings.Contains(ne.Msg, "does not exist") {
			b.suspectUse = true // the input may be a misspelling of the unused node
		}
	}
	for _, ne := range nes {
		if ne.Msg == errShapeOnly.Error() || strings.Contains(ne.Msg, `"`+placeholderType+`"`) {
			continue
		}
		if b.suspectUse && ne.Field == "" && strings.Contains(ne.Msg, "is not used by") {
			continue // its consumer may be the node that is missing or misread
		}
		b.e.list = append(b.e.list, p.Locate(ne))
	}
}

// compileSafely runs engine.Compile, turning a panic into an error.
func compileSafely(g *engine.Graph, reg *engine.Registry) (plan *engine.Plan, err error) {
	defer func() {
		if r := recover(); r != nil {
			plan, err = nil, &engine.NodeError{Node: "?", Offset: -1, Msg: "internal error while checking the graph (a bug in zflow): " + strings.TrimSpace(strings.SplitN(errString(r), "\n", 2)[0])}
		}
	}()
	return engine.Compile(g, engine.CompileOptions{Registry: reg})
}

func errString(r any) string {
	if e, ok := r.(error); ok {
		return e.Error()
	}
	if s, ok := r.(string); ok {
		return s
	}
	return "panic"
}
