package pipelines

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zflowdev/zflow/engine"
)

// The config decoder: it fills an operator's config struct (from its Spec's
// NewConfig, so defaults are already there) from a YAML mapping, driven by
// the struct's parameters as engine.Params describes them. It walks the
// YAML tree itself, instead of handing it to a generic unmarshaler, so that
// every error carries the position of the value at fault, and it goes on
// after an error to report every one in the file.
//
// What each Go type accepts is listed in the package documentation (doc.go).
// A string that came out of ${ENV} substitution is also accepted where a
// number or bool is wanted, if its text is one (parallelism: ${THREADS:-4}).

var (
	durationType        = reflect.TypeOf(time.Duration(0))
	sizeType            = reflect.TypeOf(engine.Size(0))
	orderedMapType      = reflect.TypeOf(engine.OrderedMap(nil))
	textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// maxValues bounds the values one file may decode, so that aliases that
// repeat each other (a "billion laughs") cannot blow up.
const maxValues = 1 << 20

type decoder struct {
	src    *source
	errs   *errs
	values int             // decoded so far
	failed map[string]bool // paths (and their parents) with an error
}

// fail records an error at path and its parents.
func (d *decoder) fail(path string) {
	if d.failed == nil {
		d.failed = map[string]bool{}
	}
	for {
		d.failed[path] = true
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			return
		}
		path = path[:i]
	}
}

// decodeCtx says how to name keys in messages.
type decodeCtx struct {
	noun  string   // "parameter" or "setting"
	owner string   // "filter": unknown parameter "x" for filter; "" for none
	extra []string // keys handled by the caller, offered as suggestions too
}

func (c *decodeCtx) where(path string) string {
	var b strings.Builder
	if path != "" {
		b.WriteString(" in ")
		b.WriteString(path)
	}
	if c.owner != "" {
		b.WriteString(" for ")
		b.WriteString(c.owner)
	}
	return b.String()
}

func (d *decoder) errorf(p filePos, path, format string, args ...any) {
	d.fail(path)
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.errs.add(p, "%s", msg)
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

var paramCache sync.Map // reflect.Type (a struct) -> []engine.Param

// paramsOf returns the parameters of struct type t.
func paramsOf(t reflect.Type) ([]engine.Param, error) {
	if ps, ok := paramCache.Load(t); ok {
		return ps.([]engine.Param), nil
	}
	ps, err := engine.Params(reflect.New(t).Interface())
	if err != nil {
		return nil, err
	}
	paramCache.Store(t, ps)
	return ps, nil
}

// decodeStruct fills struct v from mapping n. Keys for which skip returns
// true belong to the caller and are left alone. It reports unknown keys and
// missing required parameters.
func (d *decoder) decodeStruct(n *node, v reflect.Value, path string, c *decodeCtx, skip func(string) bool) {
	if n.kind != nodeMap {
		d.errorf(n.pos, path, "expected a map of %ss, got %s", c.noun, n.describe())
		return
	}
	params, err := paramsOf(v.Type())
	if err != nil {
		d.errorf(n.pos, path, "cannot decode into %s: %v (a bug in its config type)", v.Type(), err)
		return
	}
	seen := make([]bool, len(params))
	for _, e := range n.entries {
		if skip != nil && skip(e.key) {
			continue
		}
		i := slices.IndexFunc(params, func(p engine.Param) bool { return p.Name == e.key })
		if i < 0 {
			d.unknownKey(e, params, path, c)
			continue
		}
		seen[i] = true
		p := &params[i]
		d.value(e.val, v.FieldByIndex(p.Index), joinPath(path, p.Name), p.Enum, c)
	}
	for i, p := range params {
		if p.Required && !seen[i] {
			d.fail(joinPath(path, p.Name))
			d.errs.add(n.pos, "missing required %s %q%s", c.noun, p.Name, c.where(path))
		}
	}
}

func (d *decoder) unknownKey(e entry, params []engine.Param, path string, c *decodeCtx) {
	names := make([]string, 0, len(params))
	for _, p := range params {
		names = append(names, p.Name)
	}
	d.fail(joinPath(path, e.key))
	msg := fmt.Sprintf("unknown %s %q%s", c.noun, e.key, c.where(path))
	cands := names
	if path == "" {
		cands = append(slices.Clone(names), c.extra...)
	}
	switch s := engine.Suggest(e.key, cands); {
	case s != "":
		msg += fmt.Sprintf(", did you mean %q?", s)
	case len(names) == 0 && c.owner != "" && path == "":
		msg += fmt.Sprintf(" (%s takes no %ss)", c.owner, c.noun)
	case len(names) == 0:
		msg += fmt.Sprintf(" (no %ss here)", c.noun)
	default:
		msg += " (known: " + strings.Join(names, ", ") + ")"
	}
	d.errs.add(e.keyPos, "%s", msg)
}

// value decodes n into v, which must be settable.
func (d *decoder) value(n *node, v reflect.Value, path string, enum []string, c *decodeCtx) {
	d.values++
	if d.values > maxValues {
		if d.values == maxValues+1 {
			d.errs.add(n.pos, "too many values in one file (more than %d; do aliases repeat a large value?)", maxValues)
		}
		return
	}
	if n.bad {
		d.fail(path)
		return
	}
	t := v.Type()
	if n.kind == nodeNull {
		if t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface {
			v.SetZero()
			return
		}
		d.errorf(n.pos, path, "expected %s, got null", engine.TypeName(t))
		return
	}
	switch {
	case t == durationType:
		d.duration(n, v, path)
		return
	case t == sizeType:
		d.size(n, v, path)
		return
	case t == orderedMapType:
		if n.kind != nodeMap {
			d.errorf(n.pos, path, "expected %s, got %s", engine.TypeName(t), n.kindName())
			return
		}
		m := make(engine.OrderedMap, 0, len(n.entries))
		for _, e := range n.entries {
			var s string
			d.value(e.val, reflect.ValueOf(&s).Elem(), joinPath(path, e.key), enum, c)
			m = append(m, engine.MapEntry{Key: e.key, Value: s})
		}
		v.Set(reflect.ValueOf(m))
		return
	case t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface && reflect.PointerTo(t).Implements(textUnmarshalerType):
		if n.kind != nodeScalar {
			d.errorf(n.pos, path, "expected %s, got %s", engine.TypeName(t), n.kindName())
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.text)); err != nil {
			d.errorf(n.pos, path, "%v", err)
			return
		}
		d.checkEnum(n, path, enum)
		return
	}
	switch t.Kind() {
	case reflect.String:
		if n.kind != nodeScalar {
			d.errorf(n.pos, path, "expected string, got %s", n.kindName())
			return
		}
		if !d.checkEnum(n, path, enum) {
			return
		}
		v.SetString(n.text)
	case reflect.Bool:
		b, ok := n.bval, n.kind == nodeScalar && n.typ == typeBool
		if !ok && n.fromEnv() {
			switch n.text {
			case "true":
				b, ok = true, true
			case "false":
				b, ok = false, true
			}
		}
		if !ok {
			d.errorf(n.pos, path, "expected bool (true or false), got %s", n.describe())
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := d.integer(n, path, false)
		if !ok {
			return
		}
		if v.OverflowInt(i) {
			d.errorf(n.pos, path, "%d is out of range for %s", i, t.Kind())
			return
		}
		if d.checkEnum(n, path, enum) {
			v.SetInt(i)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		i, ok := d.integer(n, path, true)
		if !ok {
			return
		}
		u := uint64(i)
		if n.isUint {
			u = n.uval
		}
		if v.OverflowUint(u) {
			d.errorf(n.pos, path, "%d is out of range for %s", u, t.Kind())
			return
		}
		if d.checkEnum(n, path, enum) {
			v.SetUint(u)
		}
	case reflect.Float32, reflect.Float64:
		f, ok := 0.0, false
		if n.kind == nodeScalar {
			switch {
			case n.typ == typeFloat:
				f, ok = n.fval, true
			case n.typ == typeInt && n.isUint:
				f, ok = float64(n.uval), true
			case n.typ == typeInt:
				f, ok = float64(n.ival), true
			case n.fromEnv():
				var err error
				f, err = strconv.ParseFloat(n.text, 64)
				ok = err == nil
			}
		}
		if !ok {
			d.errorf(n.pos, path, "expected float, got %s", n.describe())
			return
		}
		if v.OverflowFloat(f) {
			d.errorf(n.pos, path, "%s is out of range for %s", n.text, t.Kind())
			return
		}
		v.SetFloat(f)
	case reflect.Slice:
		d.list(n, v, path, enum, c)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			d.errorf(n.pos, path, "cannot decode into %s (a bug in the operator's config type)", t)
			return
		}
		if n.kind != nodeMap {
			d.errorf(n.pos, path, "expected %s, got %s", engine.TypeName(t), n.kindName())
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.entries))
		for _, e := range n.entries {
			ev := reflect.New(t.Elem()).Elem()
			d.value(e.val, ev, joinPath(path, e.key), enum, c)
			m.SetMapIndex(reflect.ValueOf(e.key).Convert(t.Key()), ev)
		}
		v.Set(m)
	case reflect.Struct:
		if n.kind != nodeMap {
			d.errorf(n.pos, path, "expected object (a map of %ss), got %s", c.noun, n.kindName())
			return
		}
		d.decodeStruct(n, v, path, c, nil)
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.value(n, p.Elem(), path, enum, c)
		v.Set(p)
	case reflect.Interface:
		if t.NumMethod() != 0 {
			d.errorf(n.pos, path, "cannot decode into %s (a bug in the operator's config type)", t)
			return
		}
		if x := d.generic(n); x != nil {
			v.Set(reflect.ValueOf(x))
		} else {
			v.SetZero()
		}
	default:
		d.errorf(n.pos, path, "cannot decode into %s (a bug in the operator's config type)", t)
	}
}

// fromEnv tells whether a string scalar got its text from ${ENV}.
func (n *node) fromEnv() bool { return n.kind == nodeScalar && n.typ == typeString && n.env != nil }

// integer returns n as an int64 (an unsigned above MaxInt64 comes back as
// its bits, with n.isUint set).
func (d *decoder) integer(n *node, path string, unsigned bool) (int64, bool) {
	want := "int"
	if unsigned {
		want = "int ≥ 0"
	}
	if n.kind != nodeScalar {
		d.errorf(n.pos, path, "expected %s, got %s", want, n.kindName())
		return 0, false
	}
	var i int64
	switch {
	case n.typ == typeInt && n.isUint:
		if !unsigned {
			d.errorf(n.pos, path, "%s is out of range for int", n.text)
			return 0, false
		}
		return int64(n.uval), true
	case n.typ == typeInt:
		i = n.ival
	case n.typ == typeFloat && n.fval == math.Trunc(n.fval) && math.Abs(n.fval) < 1<<63:
		i = int64(n.fval)
	case n.fromEnv():
		var err error
		if i, err = strconv.ParseInt(n.text, 0, 64); err != nil {
			d.errorf(n.pos, path, "expected %s, got %s", want, n.describe())
			return 0, false
		}
	default:
		d.errorf(n.pos, path, "expected %s, got %s", want, n.describe())
		return 0, false
	}
	if unsigned && i < 0 {
		d.errorf(n.pos, path, "must be ≥ 0, got %d", i)
		return 0, false
	}
	return i, true
}

func (d *decoder) duration(n *node, v reflect.Value, path string) {
	if n.kind != nodeScalar {
		d.errorf(n.pos, path, "expected duration (like 500ms, 5s, 1m30s), got %s", n.kindName())
		return
	}
	if n.typ == typeInt && n.ival == 0 && !n.isUint {
		v.SetInt(0)
		return
	}
	if n.typ != typeString {
		d.errorf(n.pos, path, "invalid duration %s: add a unit (like 500ms, 5s, 1m30s)", n.text)
		return
	}
	dur, err := time.ParseDuration(strings.TrimSpace(n.text))
	if err != nil {
		d.errorf(n.pos, path, "invalid duration %q (want e.g. 500ms, 5s, 1m30s)", n.text)
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) size(n *node, v reflect.Value, path string) {
	if n.kind != nodeScalar || n.typ == typeBool {
		d.errorf(n.pos, path, "expected size (like 4096, 64KiB, 2GiB), got %s", n.describe())
		return
	}
	switch {
	case n.typ == typeInt && n.isUint:
		d.errorf(n.pos, path, "size %s is too large", n.text)
		return
	case n.typ == typeInt && n.ival < 0:
		d.errorf(n.pos, path, "size must be ≥ 0, got %d", n.ival)
		return
	case n.typ == typeInt:
		v.SetInt(n.ival)
		return
	}
	s, err := engine.ParseSize(n.text)
	if err != nil {
		d.errorf(n.pos, path, "%v", err)
		return
	}
	v.SetInt(int64(s))
}

// list decodes a sequence, or a lone scalar where a list of scalars is wanted.
func (d *decoder) list(n *node, v reflect.Value, path string, enum []string, c *decodeCtx) {
	t := v.Type()
	items := n.items
	switch {
	case n.kind == nodeSeq:
	case n.kind == nodeScalar && isScalarType(t.Elem()):
		items = []*node{n}
	default:
		d.errorf(n.pos, path, "expected %s, got %s", engine.TypeName(t), n.kindName())
		return
	}
	s := reflect.MakeSlice(t, len(items), len(items))
	for i, it := range items {
		ip := path + "." + strconv.Itoa(i)
		if n.kind != nodeSeq {
			ip = path
		}
		d.value(it, s.Index(i), ip, enum, c)
	}
	v.Set(s)
}

func isScalarType(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Slice, reflect.Map, reflect.Struct, reflect.Interface, reflect.Array, reflect.Pointer:
		return t == durationType || t == sizeType
	}
	return true
}

// checkEnum reports a scalar that is not one of enum's values.
func (d *decoder) checkEnum(n *node, path string, enum []string) bool {
	err := engine.CheckEnum(n.text, enum)
	if err != nil {
		d.errorf(n.pos, path, "%v", err)
	}
	return err == nil
}

// generic turns n into plain Go values for an `any` parameter.
func (d *decoder) generic(n *node) any {
	d.values++
	if d.values > maxValues {
		if d.values == maxValues+1 {
			d.errs.add(n.pos, "too many values in one file (more than %d; do aliases repeat a large value?)", maxValues)
		}
		return nil
	}
	switch n.kind {
	case nodeMap:
		m := make(map[string]any, len(n.entries))
		for _, e := range n.entries {
			m[e.key] = d.generic(e.val)
		}
		return m
	case nodeSeq:
		s := make([]any, len(n.items))
		for i, it := range n.items {
			s[i] = d.generic(it)
		}
		return s
	case nodeScalar:
		switch n.typ {
		case typeBool:
			return n.bval
		case typeInt:
			if n.isUint {
				return n.uval
			}
			return n.ival
		case typeFloat:
			return n.fval
		}
		return n.text
	}
	return nil
}
