package engine

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// ConfigFrom says where a Node's Config came from, and so what Compile does
// with it before the operator's Build sees it.
//
// A config decoded from YAML and a config written in Go must reach Build
// alike: the same defaults, the same checks of `required:"true"` and
// `enum:"a,b"`. Package pipelines decodes over NewConfig's defaults and
// checks both tags as it decodes, with file:line:col, so its nodes are
// ConfigAsGiven. A struct literal has lost NewConfig's defaults, and Go
// cannot tell a field left out from a field set to its zero value; so for a
// ConfigLiteral Compile applies one rule: a parameter left at its zero value
// takes NewConfig's default. A zero or false that differs from the default is
// written by starting from NewConfig instead (ConfigDefaults). Either way a
// required parameter still at its zero value is missing, so a required
// number cannot be 0 in Go.
type ConfigFrom uint8

const (
	// ConfigAsGiven: Config (nil means NewConfig's) is used as it is; the
	// caller made it with NewConfig and checked its parameters.
	ConfigAsGiven ConfigFrom = iota
	// ConfigDefaults: Config was made by NewConfig (or is nil) and then
	// changed in Go. Compile keeps every value, an explicit zero included,
	// and checks required parameters and enums (CheckConfig).
	ConfigDefaults
	// ConfigLiteral: Config is a struct written in Go. Compile gives each
	// parameter left at its zero value the default from NewConfig
	// (CompleteConfig), then checks it as for ConfigDefaults.
	ConfigLiteral
)

// CompleteConfig returns a copy of cfg, a pointer to a struct literal of the
// type spec's NewConfig returns, in which every parameter left at its zero
// value holds NewConfig's default; parameters that hold a struct are
// completed field by field, and a Go-only shorthand (ConfigNormalizer) is
// folded in. cfg itself is not changed. Lists, maps and the
// elements of lists are taken as they are: a nil list takes the default, an
// empty non-nil one ([]string{}) stays empty. A ConfigNormalizer's
// shorthands are folded in (NormalizeConfig), so the copy is what a YAML
// file saying the same decodes to.
func CompleteConfig(spec *Spec, cfg any) (any, error) {
	def := spec.NewConfig()
	if err := sameType(cfg, def); err != nil {
		return nil, err
	}
	params, err := Params(def)
	if err != nil {
		return nil, err
	}
	out := spec.NewConfig()
	ov := reflect.ValueOf(out).Elem()
	ov.Set(reflect.ValueOf(cfg).Elem())
	if n, ok := out.(ConfigNormalizer); ok {
		n.NormalizeConfig() // out is a copy: the caller's struct keeps its shorthand
	}
	fillDefaults(ov, reflect.ValueOf(def).Elem(), params)
	if n, ok := out.(ConfigNormalizer); ok {
		n.NormalizeConfig()
	}
	return out, nil
}

func fillDefaults(v, def reflect.Value, params []Param) {
	for _, p := range params {
		f, d := v.FieldByIndex(p.Index), def.FieldByIndex(p.Index)
		switch {
		case f.IsZero():
			if !d.IsZero() {
				f.Set(d)
			}
		case f.Kind() == reflect.Struct && len(p.Fields) > 0:
			fillDefaults(f, d, p.Fields)
		}
	}
}

// sameType reports a config whose type is not the one NewConfig returns (a
// Build would panic on it).
func sameType(cfg, def any) error {
	if got, want := reflect.TypeOf(cfg), reflect.TypeOf(def); got != want {
		return fmt.Errorf("config is %v, want %v", got, want)
	}
	return nil
}

// CheckConfig checks cfg, a config of spec's type, against its parameters'
// tags as package pipelines does for YAML, with the same messages: a
// required parameter at its zero value is missing, and a value outside its
// enum is invalid. A parameter at its zero value that is also NewConfig's
// default counts as not given and is not checked against its enum. The
// errors name the parameter (dotted for nested ones: "columns.1.type").
func CheckConfig(spec *Spec, cfg any) []*FieldError {
	def := spec.NewConfig()
	if err := sameType(cfg, def); err != nil {
		return []*FieldError{{Offset: -1, Msg: err.Error()}}
	}
	params, err := Params(def)
	if err != nil {
		return []*FieldError{{Offset: -1, Msg: err.Error()}}
	}
	c := configChecker{owner: spec.Name}
	c.structure(reflect.ValueOf(cfg).Elem(), reflect.ValueOf(def).Elem(), params, "")
	return c.errs
}

type configChecker struct {
	owner string
	errs  []*FieldError
}

// structure checks struct v; def holds its defaults, or is invalid for a
// struct that has none (an element of a list).
func (c *configChecker) structure(v, def reflect.Value, params []Param, path string) {
	for _, p := range params {
		f, name := v.FieldByIndex(p.Index), joinField(path, p.Name)
		if f.IsZero() {
			if p.Required {
				where := ""
				if path != "" {
					where = " in " + path
				}
				c.errs = append(c.errs, Errf(name, "missing required parameter %q%s for %s", p.Name, where, c.owner))
				continue
			}
			if !def.IsValid() || def.FieldByIndex(p.Index).IsZero() {
				continue // not given
			}
		}
		var d reflect.Value
		if def.IsValid() {
			d = def.FieldByIndex(p.Index)
		}
		c.value(f, d, p, name)
	}
}

// value checks the value of parameter p, or an element of it.
func (c *configChecker) value(v, def reflect.Value, p Param, path string) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			if def.IsValid() && !def.IsNil() {
				def = def.Elem()
			} else {
				def = reflect.Value{}
			}
			c.value(v.Elem(), def, p, path)
		}
		return
	case reflect.Slice:
		if v.Type() == orderedMapType {
			for _, e := range v.Interface().(OrderedMap) {
				c.value(reflect.ValueOf(e.Value), reflect.Value{}, p, path+"."+e.Key)
			}
			return
		}
		if v.Type().Elem().Kind() != reflect.Uint8 { // []byte is a scalar
			for i := range v.Len() {
				c.value(v.Index(i), reflect.Value{}, p, path+"."+strconv.Itoa(i))
			}
			return
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		for _, k := range keys {
			c.value(v.MapIndex(k), reflect.Value{}, p, path+"."+fmt.Sprint(k))
		}
		return
	case reflect.Struct:
		if len(p.Fields) > 0 {
			c.structure(v, def, p.Fields, path)
			return
		}
	}
	if len(p.Enum) > 0 {
		if err := CheckEnum(scalarText(v), p.Enum); err != nil {
			c.errs = append(c.errs, &FieldError{Field: path, Offset: -1, Msg: err.Error()})
		}
	}
}

// scalarText is a scalar config value as a YAML file would spell it.
func scalarText(v reflect.Value) string {
	if v.CanInterface() {
		if m, ok := v.Interface().(encoding.TextMarshaler); ok {
			if b, err := m.MarshalText(); err == nil {
				return string(b)
			}
		}
	}
	if v.Kind() == reflect.String {
		return v.String()
	}
	return fmt.Sprint(v.Interface())
}

func joinField(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// CheckEnum reports a value that is not one of enum's (a parameter tagged
// `enum:"a,b"`), suggesting the closest. Package pipelines and Compile both
// use it, so YAML and Go get the same message.
func CheckEnum(value string, enum []string) error {
	if len(enum) == 0 || slices.Contains(enum, value) {
		return nil
	}
	msg := fmt.Sprintf("invalid value %q", value)
	if s := Suggest(value, enum); s != "" {
		msg += fmt.Sprintf(", did you mean %q?", s)
	}
	return fmt.Errorf("%s (one of: %s)", msg, strings.Join(enum, ", "))
}

// ConfigNormalizer is implemented by configs with a Go-only shorthand that
// folds into a parameter (the file sources' Path, one entry of the path
// list). Compile calls NormalizeConfig on a copy of the node's config before
// it completes and checks it, so a required parameter given through the
// shorthand is not missing; the caller's struct is not changed.
type ConfigNormalizer interface {
	NormalizeConfig()
}

// prepareConfig makes n.Config ready for Build according to n.ConfigFrom,
// and returns what is wrong with it.
func prepareConfig(n *Node, spec *Spec) []*FieldError {
	if v := reflect.ValueOf(n.Config); n.Config == nil || v.Kind() == reflect.Pointer && v.IsNil() {
		n.Config = spec.NewConfig()
	}
	if _, ok := n.Config.(ConfigNormalizer); ok {
		v := reflect.ValueOf(n.Config)
		c := reflect.New(v.Type().Elem())
		c.Elem().Set(v.Elem())
		c.Interface().(ConfigNormalizer).NormalizeConfig()
		n.Config = c.Interface()
	}
	switch n.ConfigFrom {
	case ConfigLiteral:
		full, err := CompleteConfig(spec, n.Config)
		if err != nil {
			return []*FieldError{{Offset: -1, Msg: err.Error()}}
		}
		n.Config = full
		return CheckConfig(spec, full)
	case ConfigDefaults:
		return CheckConfig(spec, n.Config)
	}
	if err := sameType(n.Config, spec.NewConfig()); err != nil {
		return []*FieldError{{Offset: -1, Msg: err.Error()}}
	}
	return nil
}
