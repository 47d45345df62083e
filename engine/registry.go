package engine

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
)

// Kind says where an operator sits in a graph.
type Kind int

const (
	KindSource    Kind = iota // no inputs, emits batches
	KindTransform             // inputs and an output
	KindSink                  // inputs, no output
)

func (k Kind) String() string {
	switch k {
	case KindSource:
		return "source"
	case KindTransform:
		return "transform"
	case KindSink:
		return "sink"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Spec declares an operator type. It is the single source of truth for the
// operator's parameters: validation, `zflow operators`, and the reference
// docs are all derived from NewConfig's struct (see [Params]).
type Spec struct {
	Name    string // snake_case, unique per Kind
	Kind    Kind
	Summary string // one line
	Doc     string // longer description, optional
	Example string // a YAML snippet of the node's body, shown by `zflow operators`

	// Parallel says the operator may run as several instances
	// (`parallelism: N`): each instance gets a share of the input (a
	// transform) or of the data (a source, by InstanceContext.Index), and
	// none shares state with another. An operator that keeps state across
	// batches (an aggregate, a sort, a limit) leaves it false.
	Parallel bool
	// Shardable says a source reads only its share of the data when the
	// run is one shard of several (Settings.Shard): its instances split
	// by InstanceContext.Mine and ShareRange rather than Index and
	// Count. A source without it runs on shard 0 only.
	Shardable bool
	// Unordered says the operator's output keeps no order of its input
	// (an aggregate emits its groups once its input is done): its
	// parallel instances take batches as they come and never wait for
	// each other's turn to emit, as a node with ordered: false.
	Unordered bool
	// MinInputs and MaxInputs bound the node's inputs; MaxInputs < 0 means
	// unbounded. Sources have 0 and 0.
	MinInputs, MaxInputs int
	// PortEnds says the transform's instances implement PortEnder: the
	// executor tells them when each input port has ended, and keeps no
	// input order for them (parallel instances emit in completion order),
	// as an operator that waits for one input before it uses another (a
	// join) has none to keep.
	PortEnds bool
	// Outputs names the operator's output ports besides its main one:
	// port k (1, 2, …) is Outputs[k-1], read by a node listing
	// "ID.NAME" among its inputs, with the schema its factory's
	// PortSchemas gives, and emitted to through PortEmitter. Nothing
	// needs to read them.
	Outputs []string
	// Exchange says the operator routes its batches to the instances of
	// its consumers: its emitter is a LaneEmitter, each consumer instance
	// reads a lane of its own, and the consumers, which must run the same
	// number of instances, keep no input order. A factory whose exchange
	// hashes rows by columns says which (ExchangeKeyer).
	Exchange bool
	// SameInputTwice lets one node be listed twice among the inputs (a
	// self-join: its batches go to both ports, by reference).
	SameInputTwice bool
	// BatchLocal says a transform's output for a batch depends on that
	// batch alone (a filter, a projection, a lookup in a fixed table): a
	// run split across processes (Settings.Shard) gives the same rows in
	// all as in one. An operator whose result needs rows of other batches
	// (an aggregate, a join, a sort, a limit) leaves it false.
	BatchLocal bool

	// NewConfig returns a pointer to a config struct filled with defaults.
	// Fields are described by struct tags: `zflow:"name"` (the YAML key),
	// `doc:"..."`, `required:"true"`, `enum:"a,b"` (the allowed values),
	// `example:"..."`.
	NewConfig func() any

	// Build checks cfg (of NewConfig's type, with its defaults where the
	// pipeline does not set a parameter, required parameters present and
	// enums respected: see ConfigFrom) against the input schemas and
	// returns a factory for the node's instances. Errors about a parameter
	// should be *FieldError so they can be placed in the source file.
	Build func(bc *BuildContext, cfg any) (Factory, error)
}

// BuildContext is what Build sees of the graph at compile time.
type BuildContext struct {
	Node     string          // the node's id
	Inputs   []*arrow.Schema // the schema of each input, in the node's order
	InputIDs []string        // the id of each input
	Settings Settings
	// Stdin is the run's standard input, for a source whose path is "-":
	// Build may Peek at it (to read a schema), never Read. Nil outside
	// Compile (operator unit tests).
	Stdin *Stdin
	// Narrowed is set when Compile builds the node again after projection
	// pushdown narrowed its inputs to the columns it said it reads
	// (ColumnUser). A column the pipeline names only to leave it out (a
	// project's drop, a rename of a column no one reads) may then be
	// missing, which is not an error: the first build checked every name
	// against the whole schemas.
	Narrowed bool
	// PartitionedBy is what the node's instances will see as
	// InstanceContext.PartitionedBy.
	PartitionedBy []string
}

// Factory makes the instances of one compiled node.
type Factory interface {
	// Schema is the node's output schema; nil for sinks.
	Schema() *arrow.Schema
	// New makes instance ic.Index of ic.Count. It returns a Source, a
	// Transform or a Sink according to the Spec's Kind.
	New(ic *InstanceContext) (any, error)
}

// PortSchemas is the Factory interface of an operator with output ports
// (Spec.Outputs): the schema of port k ≥ 1.
type PortSchemas interface {
	OutputSchema(port int) *arrow.Schema
}

// ExchangeKeyer is the Factory interface of a hash exchange: the columns
// by which it routes rows to lanes (a row's lane is a function of their
// values alone). Its consumers see them as InstanceContext.PartitionedBy.
type ExchangeKeyer interface {
	ExchangeKeys() []string
}

// Describer is an optional Factory interface: a one-line description of the
// compiled node for `zflow plan` (the predicate, the path, the backend...).
type Describer interface {
	Describe() string
}

// IODescriber is implemented by factories of file sources and sinks: the
// storage backend their files go through and why, shown on its own line
// of the plan ("io: uring (auto: ext4 on vda is a block device ...)").
type IODescriber interface {
	DescribeIO() string
}

// Registry holds operator specs by kind and name.
type Registry struct {
	mu    sync.RWMutex
	specs map[Kind]map[string]*Spec
}

// NewRegistry returns an empty registry. Most users want [DefaultRegistry].
func NewRegistry() *Registry { return &Registry{specs: map[Kind]map[string]*Spec{}} }

// DefaultRegistry is where built-in operators register themselves in init.
var DefaultRegistry = NewRegistry()

// Register adds s to the default registry; it panics on a duplicate or an
// invalid spec (a programming error found at init).
func Register(s Spec) { DefaultRegistry.MustRegister(s) }

// MustRegister is Register panicking on error.
func (r *Registry) MustRegister(s Spec) {
	if err := r.Register(s); err != nil {
		panic(err)
	}
}

// Register adds s to r.
func (r *Registry) Register(s Spec) error {
	if s.Name == "" || s.Name != strings.ToLower(s.Name) || strings.ContainsAny(s.Name, " -.") {
		return fmt.Errorf("engine: register %s %q: name must be snake_case", s.Kind, s.Name)
	}
	if s.Build == nil || s.NewConfig == nil {
		return fmt.Errorf("engine: register %s %q: Build and NewConfig are required", s.Kind, s.Name)
	}
	if _, err := Params(s.NewConfig()); err != nil {
		return fmt.Errorf("engine: register %s %q: %w", s.Kind, s.Name, err)
	}
	if s.Kind == KindSource {
		s.MinInputs, s.MaxInputs = 0, 0
	} else if s.MinInputs < 1 {
		s.MinInputs = 1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.specs[s.Kind]
	if m == nil {
		m = map[string]*Spec{}
		r.specs[s.Kind] = m
	}
	if _, dup := m[s.Name]; dup {
		return fmt.Errorf("engine: register %s %q: already registered", s.Kind, s.Name)
	}
	m[s.Name] = &s
	return nil
}

// Lookup finds the spec of kind k named name. The error lists the known
// names and, where one is close, suggests it.
func (r *Registry) Lookup(k Kind, name string) (*Spec, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s, ok := r.specs[k][name]; ok {
		return s, nil
	}
	known := r.namesLocked(k)
	msg := fmt.Sprintf("unknown %s type %q", k, name)
	if s := Suggest(name, known); s != "" {
		msg += fmt.Sprintf(", did you mean %q?", s)
	}
	msg += " (known: " + strings.Join(known, ", ") + ")"
	return nil, &UnknownTypeError{Kind: k, Name: name, Msg: msg}
}

// UnknownTypeError is returned by Lookup.
type UnknownTypeError struct {
	Kind Kind
	Name string
	Msg  string
}

func (e *UnknownTypeError) Error() string { return e.Msg }

// Names lists the registered names of kind k, sorted.
func (r *Registry) Names(k Kind) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.namesLocked(k)
}

func (r *Registry) namesLocked(k Kind) []string {
	var out []string
	for n := range r.specs[k] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Specs lists every registered spec, by kind then name.
func (r *Registry) Specs() []*Spec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*Spec
	for _, k := range []Kind{KindSource, KindTransform, KindSink} {
		for _, n := range r.namesLocked(k) {
			out = append(out, r.specs[k][n])
		}
	}
	return out
}

// Param describes one config parameter, derived from a config struct field.
type Param struct {
	Name     string       // YAML key
	Type     string       // human type: string, int, float, bool, duration, size, list of string, ...
	GoType   reflect.Type // the field's Go type
	Index    []int        // field index path in the struct
	Required bool
	Default  string // rendered from NewConfig's value; "" when zero
	Doc      string
	Example  string
	Enum     []string // allowed values, from `enum:"a,b,c"`
	Fields   []Param  // for struct and list-of-struct params
}

// Params lists the parameters of a config struct pointer (as returned by a
// Spec's NewConfig), in declaration order. The parameters of an embedded
// struct field with no zflow tag are listed in its place, as the outer
// struct's own (parameters several operators share, declared once).
func Params(cfg any) ([]Param, error) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("config must be a pointer to a struct, got %T", cfg)
	}
	return structParams(v.Elem())
}

func structParams(v reflect.Value) ([]Param, error) {
	t := v.Type()
	var out []Param
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, ok := f.Tag.Lookup("zflow")
		if !ok && f.Anonymous && f.Type.Kind() == reflect.Struct && f.IsExported() {
			// An embedded struct without a tag shares its parameters: they
			// are the outer struct's, at the embedded field's index path.
			sub, err := structParams(v.Field(i))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.Name, err)
			}
			for _, p := range sub {
				p.Index = append(slices.Clone(f.Index), p.Index...)
				out = append(out, p)
			}
			continue
		}
		if !ok || name == "-" {
			continue
		}
		if !f.IsExported() {
			return nil, fmt.Errorf("field %s has a zflow tag but is not exported", f.Name)
		}
		p := Param{
			Name:     name,
			GoType:   f.Type,
			Index:    f.Index,
			Required: f.Tag.Get("required") == "true",
			Doc:      f.Tag.Get("doc"),
			Example:  f.Tag.Get("example"),
			Type:     TypeName(f.Type),
		}
		if e := f.Tag.Get("enum"); e != "" {
			p.Enum = strings.Split(e, ",")
		}
		fv := v.Field(i)
		p.Default = renderDefault(fv)
		et := f.Type
		if et.Kind() == reflect.Slice || et.Kind() == reflect.Map {
			et = et.Elem()
		}
		if et.Kind() == reflect.Struct && et != durationType && et != sizeType && f.Type != orderedMapType {
			sub, err := structParams(reflect.New(et).Elem())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			p.Fields = sub
		}
		out = append(out, p)
	}
	names := make([]string, len(out))
	for i, p := range out {
		names[i] = p.Name
	}
	slices.Sort(names)
	for i := 1; i < len(names); i++ {
		if names[i] == names[i-1] {
			return nil, fmt.Errorf("duplicate parameter %q", names[i])
		}
	}
	return out, nil
}

func renderDefault(v reflect.Value) string {
	if v.IsZero() {
		return ""
	}
	switch x := v.Interface().(type) {
	case fmt.Stringer:
		return x.String()
	case []string: // as YAML writes a list: null_values: [""]
		q := make([]string, len(x))
		for i, e := range x {
			q[i] = strconv.Quote(e)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.Struct, reflect.Pointer:
		return ""
	}
	return fmt.Sprint(v.Interface())
}

// TypeName is the human name of a config field type.
func TypeName(t reflect.Type) string {
	switch t {
	case durationType:
		return "duration"
	case sizeType:
		return "size"
	case orderedMapType:
		return "map of string (in order)"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "float"
	case reflect.Slice:
		return "list of " + TypeName(t.Elem())
	case reflect.Map:
		return "map of " + TypeName(t.Elem())
	case reflect.Struct:
		return "object"
	case reflect.Pointer:
		return TypeName(t.Elem())
	}
	return t.String()
}
