package pipelines

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// Version is the pipeline file format version this package reads.
const Version = 1

// Pipeline is a parsed and checked pipeline file: its graph is well formed
// (known operator types, parameters of the right types, inputs that exist,
// no cycles). Compile turns it into an engine plan.
type Pipeline struct {
	File     string // the file name errors are reported against
	Version  int
	Name     string
	Settings Settings
	// Graph holds the nodes in file order, each with its decoded config. Its
	// Settings are Settings.Engine().
	Graph *engine.Graph

	reg   *engine.Registry
	stdin io.Reader // what a source with path "-" reads; nil: os.Stdin
	src   *source
	nodes map[string]*nodeInfo
}

// nodeInfo is where a node is in the file.
type nodeInfo struct {
	id    string
	idPos filePos
	body  *node // the node's mapping
}

// Option configures Parse and Load.
type Option func(*options)

type options struct {
	reg    *engine.Registry
	lookup func(string) (string, bool)
	stdin  io.Reader
}

// WithRegistry makes the pipeline use reg for its operator types instead of
// engine.DefaultRegistry (Compile uses it too).
func WithRegistry(reg *engine.Registry) Option { return func(o *options) { o.reg = reg } }

// WithStdin makes a source with path "-" read r instead of os.Stdin
// (Compile peeks at it for the source's schema; runs read it).
// Compiling the pipeline more than once peeks at the same buffered stream.
func WithStdin(r io.Reader) Option {
	return func(o *options) {
		if r != nil {
			o.stdin = engine.NewStdin(r)
		}
	}
}

// WithEnv replaces os.LookupEnv for ${NAME} substitution.
func WithEnv(lookup func(name string) (string, bool)) Option {
	return func(o *options) { o.lookup = lookup }
}

// Load reads and parses the pipeline file at path. Errors name the file as
// path was given; a file that cannot be read gives a plain error wrapping
// the os error, not an ErrorList.
func Load(path string, opts ...Option) (*Pipeline, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pipelines: read %s: %w", path, err)
	}
	return Parse(src, path, opts...)
}

// Parse parses and checks the pipeline in src; filename is only used in
// error messages. On failure the error is an ErrorList holding every error
// found in the file (a YAML syntax error stops it early), sorted by
// position. Parse checks the graph's shape (types, inputs, cycles, unused
// outputs) but does not build operators: Compile does, and reports what
// needs input schemas (unknown columns, expression errors).
func Parse(src []byte, filename string, opts ...Option) (*Pipeline, error) {
	o := options{reg: engine.DefaultRegistry, lookup: os.LookupEnv}
	for _, opt := range opts {
		opt(&o)
	}
	if o.reg == nil {
		o.reg = engine.DefaultRegistry
	}
	if o.lookup == nil {
		o.lookup = os.LookupEnv
	}
	p := &Pipeline{
		File:     filename,
		Settings: DefaultSettings(),
		reg:      o.reg,
		stdin:    o.stdin,
		src:      newSource(normalizeNewlines(bytes.TrimPrefix(src, []byte("\xef\xbb\xbf")))),
		nodes:    map[string]*nodeInfo{},
	}
	e := &errs{file: filename}
	root := parseYAML(p.src, o.lookup, e)
	if root == nil {
		if len(e.list) == 0 {
			e.add(filePos{1, 1}, "empty pipeline file (want version, name, sources and sinks)")
		}
		return nil, e.sortedIn(p.src)
	}
	b := &graphBuilder{p: p, e: e, d: &decoder{src: p.src, errs: e}, broken: map[string]bool{}, badInputs: map[string]bool{}}
	if !b.build(root) {
		return nil, e.sortedIn(p.src)
	}
	if len(e.list) > 0 {
		return nil, e.sortedIn(p.src)
	}
	return p, nil
}

// build decodes the tree and checks the graph. A panic here is a bug (in
// this package or in an operator's config type); it is reported as an
// error at the top of the file rather than taking the caller down.
func (b *graphBuilder) build(root *node) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			b.e.add(filePos{1, 1}, "internal error while checking the pipeline: %v (a bug in zflow; please report it)", r)
			ok = false
		}
	}()
	b.top(root)
	b.shapeCheck()
	return true
}

// Compile builds the pipeline's plan with its registry: it computes every
// node's output schema and lets each operator check its parameters against
// its inputs. Errors come back as an ErrorList placed in the file.
func (p *Pipeline) Compile() (*engine.Plan, error) {
	plan, err := engine.Compile(p.Graph, engine.CompileOptions{Registry: p.reg, Stdin: p.stdin})
	if err == nil {
		return plan, nil
	}
	e := &errs{file: p.File}
	for _, ne := range flattenNodeErrors(err) {
		e.list = append(e.list, p.Locate(ne))
	}
	return nil, e.sortedIn(p.src)
}

// Locate places an engine error about a node in the file: at the value
// of its Field (a dotted path: "where", "columns.2.type", "inputs.1"), at
// Offset inside that value when it is a string, or at the node's id when
// there is no field. Run errors can be placed the same way, with a
// NodeError{Node: id, Offset: -1}.
func (p *Pipeline) Locate(ne *engine.NodeError) *Error {
	pos, ok := p.position(ne.Node, ne.Field, ne.Offset)
	if !ok {
		return &Error{File: p.File, Msg: ne.Error()}
	}
	return &Error{File: p.File, Line: pos.Line, Col: pos.Col, Msg: ne.Msg}
}

// position finds node id's field in the file.
func (p *Pipeline) position(id, field string, offset int) (filePos, bool) {
	info := p.nodes[id]
	if info == nil {
		return filePos{}, false
	}
	if field == "" {
		return info.idPos, true
	}
	parts := strings.Split(field, ".")
	n := info.body
	for i, part := range parts {
		next := step(n, part)
		if next == nil {
			if i == 0 {
				return info.idPos, true // a parameter left at its default
			}
			return n.pos, true
		}
		n = next
	}
	if offset >= 0 && n.kind == nodeScalar && n.typ == typeString {
		return scalarPos(p.src, n, offset, true), true
	}
	return n.pos, true
}

// step descends one component of a field path.
func step(n *node, part string) *node {
	switch n.kind {
	case nodeMap:
		if e := n.lookup(part); e != nil {
			return e.val
		}
	case nodeSeq:
		if i, err := strconv.Atoi(part); err == nil && i >= 0 && i < len(n.items) && strconv.Itoa(i) == part {
			return n.items[i]
		}
	case nodeScalar:
		if part == "0" { // a lone scalar where a list was wanted
			return n
		}
	}
	return nil
}

// resolvePath descends a path of keys and indexes, or returns nil.
func resolvePath(n *node, path []string) *node {
	for _, part := range path {
		if n = step(n, part); n == nil {
			return nil
		}
	}
	return n
}

func structValue(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }

// flattenNodeErrors lists the NodeErrors in what engine.Compile returned.
func flattenNodeErrors(err error) []*engine.NodeError {
	var out []*engine.NodeError
	var walk func(error)
	walk = func(err error) {
		switch x := err.(type) {
		case *engine.NodeError:
			out = append(out, x)
		case interface{ Unwrap() []error }:
			for _, e := range x.Unwrap() {
				walk(e)
			}
		default:
			out = append(out, &engine.NodeError{Node: "?", Offset: -1, Msg: err.Error()})
		}
	}
	walk(err)
	return out
}

// The top level of the file.

type sectionDef struct {
	key  string
	kind engine.Kind
}

var sections = []sectionDef{
	{"sources", engine.KindSource},
	{"operators", engine.KindTransform},
	{"sinks", engine.KindSink},
}

var topKeys = []string{"version", "name", "settings", "sources", "operators", "sinks"}

// commonKeys are the keys of every node that are not operator parameters.
var commonKeys = []string{"type", "inputs", "parallelism", "ordered", "memory"}

type graphBuilder struct {
	p *Pipeline
	e *errs
	d *decoder

	broken     map[string]bool // nodes whose type or parameters are wrong
	badInputs  map[string]bool // nodes whose inputs could not be read
	incomplete bool            // a section is missing or unreadable: the graph is partial
	suspectUse bool            // a node may be missing: "output not used" errors may be wrong
	firstID    map[string]filePos
}

func (b *graphBuilder) top(root *node) {
	p, e := b.p, b.e
	if root.kind != nodeMap {
		e.add(root.pos, "a pipeline is a map with version, name, settings, sources, operators and sinks; got %s", root.kindName())
		return
	}
	for _, en := range root.entries {
		if slices.Contains(topKeys, en.key) || strings.HasPrefix(en.key, "x-") {
			continue
		}
		if engine.Suggest(en.key, []string{"sources", "operators", "sinks"}) != "" {
			b.incomplete = true // a misspelt section: the graph lacks its nodes
		}
		msg := fmt.Sprintf("unknown top-level key %q", en.key)
		if s := engine.Suggest(en.key, topKeys); s != "" {
			msg += fmt.Sprintf(", did you mean %q?", s)
		} else {
			msg += " (known: " + strings.Join(topKeys, ", ") + "; keys starting with x- are ignored)"
		}
		e.add(en.keyPos, "%s", msg)
	}

	if en := root.lookup("version"); en == nil {
		e.add(root.pos, "missing version (add version: %d)", Version)
	} else if !en.val.bad {
		v, ok := b.d.integer(en.val, "version", false)
		if ok && v != Version {
			e.add(en.val.pos, "unsupported version %d (this zflow reads version %d)", v, Version)
		}
		p.Version = int(v)
	}

	if en := root.lookup("name"); en == nil {
		e.add(root.pos, "missing name (add name: followed by a name for the pipeline)")
	} else {
		b.d.value(en.val, reflect.ValueOf(&p.Name).Elem(), "name", nil, &decodeCtx{noun: "key"})
		if p.Name == "" && !en.val.bad && en.val.kind == nodeScalar {
			e.add(en.val.pos, "name: must not be empty")
		}
	}

	if en := root.lookup("settings"); en != nil {
		if isEmpty(en.val) {
			e.add(en.val.pos, "settings is empty; remove it or give a setting")
		} else {
			b.d.decodeSettings(en.val, &p.Settings)
		}
	}

	p.Graph = &engine.Graph{Name: p.Name, Settings: p.Settings.Engine()}
	// Values reported above, at their places, are not reported again by
	// the engine's own checks.
	reported(&p.Graph.Settings.Memory)
	b.firstID = map[string]filePos{}
	for _, en := range root.entries {
		for _, sec := range sections {
			if en.key == sec.key {
				b.section(en, sec.kind)
			}
		}
	}
	for _, sec := range []string{"sources", "sinks"} {
		if root.lookup(sec) == nil {
			b.incomplete = true
			e.add(root.pos, "missing section %q (a pipeline needs at least one %s)", sec, strings.TrimSuffix(sec, "s"))
		}
	}
}

func isEmpty(n *node) bool {
	return !n.bad && (n.kind == nodeNull || (n.kind == nodeMap && len(n.entries) == 0))
}

func validID(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c == '-' || c >= '0' && c <= '9'):
		default:
			return false
		}
	}
	return true
}

func (b *graphBuilder) section(sec entry, kind engine.Kind) {
	e := b.e
	n := sec.val
	if n.bad {
		b.incomplete = true
		return
	}
	if isEmpty(n) {
		e.add(sec.keyPos, "section %q is empty; remove it or add a node", sec.key)
		b.incomplete = true
		return
	}
	if n.kind != nodeMap {
		e.add(n.pos, "section %q must map node ids to nodes, got %s", sec.key, n.kindName())
		b.incomplete = true
		return
	}
	for _, en := range n.entries {
		if !validID(en.key) {
			e.add(en.keyPos, "invalid node id %q (use letters, digits, _ and -, starting with a letter or _)", en.key)
		}
		if first, dup := b.firstID[en.key]; dup {
			e.add(en.keyPos, "duplicate node id %q (first at line %d, column %d; ids are shared by sources, operators and sinks)", en.key, first.Line, first.Col)
			b.suspectUse = true
			continue
		}
		b.firstID[en.key] = en.keyPos
		b.node(en, kind)
		if !validID(en.key) {
			b.broken[en.key] = true
		}
	}
}

// node decodes one node and adds it to the graph.
func (b *graphBuilder) node(en entry, kind engine.Kind) {
	p, e, d := b.p, b.e, b.d
	before := len(e.list)
	id, body := en.key, en.val
	gn := &engine.Node{ID: id, Kind: kind}
	p.Graph.Nodes = append(p.Graph.Nodes, gn)
	p.nodes[id] = &nodeInfo{id: id, idPos: en.keyPos, body: body}
	if body.bad {
		b.broken[id] = true
		return
	}
	if body.kind != nodeMap {
		e.add(body.pos, "node %q must be a map with a type, got %s", id, body.describe())
		b.broken[id] = true
		return
	}

	// Common keys.
	var spec *engine.Spec
	if t := body.lookup("type"); t == nil {
		e.add(body.pos, "missing type for node %q (the %s type: one of %s)", id, kind, strings.Join(p.reg.Names(kind), ", "))
	} else if t.val.kind != nodeScalar || t.val.typ != typeString {
		if !t.val.bad {
			e.add(t.val.pos, "type: expected string (an operator type), got %s", t.val.describe())
		}
	} else if !t.val.bad {
		gn.Type = t.val.text
		switch s, err := p.reg.Lookup(kind, gn.Type); {
		case err == nil:
			spec = s
		case b.otherKind(kind, gn.Type) != nil:
			other := b.otherKind(kind, gn.Type)
			e.add(t.val.pos, "%q is a %s type, not a %s; move node %q to the %s section", gn.Type, other.kind, kind, id, other.key)
		default:
			e.add(t.val.pos, "%s", err.Error())
		}
	}
	if in := body.lookup("inputs"); in != nil {
		n := len(e.list)
		d.value(in.val, reflect.ValueOf(&gn.Inputs).Elem(), "inputs", nil, &decodeCtx{noun: "input"})
		for i, s := range gn.Inputs {
			if it := step(in.val, fmt.Sprint(i)); s == "" && it != nil && len(e.list) == n {
				e.add(it.pos, "inputs: an input must be a node id, got an empty string")
			}
		}
		if len(e.list) > n || in.val.bad {
			b.badInputs[id] = true
			b.suspectUse = true
		}
	}
	if par := body.lookup("parallelism"); par != nil {
		var n Auto
		d.value(par.val, reflect.ValueOf(&n).Elem(), "parallelism", nil, &decodeCtx{noun: "key"})
		gn.Parallelism = int(n)
	}
	if ord := body.lookup("ordered"); ord != nil {
		ordered := true
		d.value(ord.val, reflect.ValueOf(&ordered).Elem(), "ordered", nil, &decodeCtx{noun: "key"})
		gn.Unordered, gn.Ordered = !ordered, ordered
	}
	if mem := body.lookup("memory"); mem != nil {
		ms := nodeMemoryDefaults()
		d.failed = nil // the checks below look at this block's errors only
		d.decodeStruct(mem.val, structValue(&ms), "memory", &decodeCtx{noun: "setting"}, nil)
		ms.arenaWritten = resolvePath(mem.val, []string{"arena"}) != nil
		if mem.val.kind == nodeMap {
			at := func(path ...string) filePos {
				if v := resolvePath(body, path); v != nil {
					return v.pos
				}
				return mem.val.pos
			}
			ok := func(paths ...string) bool {
				for _, p := range paths {
					if d.failed[p] {
						return false
					}
				}
				return true
			}
			d.checkMemory(&ms, "memory", at, ok, true)
			pool := ms.Pool()
			reported(&pool)
			gn.Memory = &pool
		}
	}

	// Parameters.
	if spec != nil {
		cfg := spec.NewConfig()
		gn.Config = cfg
		ctx := &decodeCtx{noun: "parameter", owner: spec.Name, extra: commonKeys}
		d.decodeStruct(body, structValue(cfg), "", ctx, func(k string) bool { return slices.Contains(commonKeys, k) })
	}
	if len(e.list) > before || spec == nil {
		b.broken[id] = true
	}
}

// reported clears what checkMemory has reported in m, at its place, so
// that the engine's own checks of the same values do not report it again.
func reported(m *buffers.PoolConfig) {
	k, err := buffers.LookupKind(m.Kind)
	switch {
	case m.Kind == "":
		m.Path, m.Size = "", 0
	case err != nil || (k.Path && m.Path == ""):
		m.Kind, m.Path, m.Size = "", "", 0
	case !k.Path:
		m.Path, m.Size = "", 0
	}
	if m.Budget < 0 || m.SoftBudget < 0 || (m.Budget > 0 && m.SoftBudget > m.Budget) {
		m.Budget, m.SoftBudget = 0, 0
	}
}

// otherKind finds the section of another kind a type is registered under.
func (b *graphBuilder) otherKind(k engine.Kind, name string) *sectionDef {
	if name == "" {
		return nil
	}
	for i, sec := range sections {
		if sec.kind == k {
			continue
		}
		if _, err := b.p.reg.Lookup(sec.kind, name); err == nil {
			return &sections[i]
		}
	}
	return nil
}
