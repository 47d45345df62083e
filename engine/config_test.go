package engine

import (
	"fmt"
	"reflect"
	"testing"
)

type cfgInner struct {
	Mode  string `zflow:"mode" enum:"fast,slow"`
	Level int    `zflow:"level"`
}

type cfgTest struct {
	Path   string            `zflow:"path" required:"true"`
	Format string            `zflow:"format" enum:"a,b"`
	Kind   string            `zflow:"kind" enum:"x,y"`
	On     bool              `zflow:"on"`
	Nulls  []string          `zflow:"nulls"`
	Inner  cfgInner          `zflow:"inner"`
	Items  []cfgInner        `zflow:"items"`
	ByName map[string]string `zflow:"by_name" enum:"p,q"`
	note   string
}

var cfgSpec = &Spec{Name: "t", NewConfig: func() any {
	return &cfgTest{Format: "a", On: true, Nulls: []string{""}, Inner: cfgInner{Mode: "fast", Level: 3}}
}}

func TestCompleteConfig(t *testing.T) {
	lit := &cfgTest{Path: "p", Nulls: []string{}, Inner: cfgInner{Level: 5}, note: "kept"}
	got, err := CompleteConfig(cfgSpec, lit)
	if err != nil {
		t.Fatal(err)
	}
	want := &cfgTest{Path: "p", Format: "a", On: true, Nulls: []string{}, Inner: cfgInner{Mode: "fast", Level: 5}, note: "kept"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if lit.Format != "" {
		t.Errorf("the literal was changed: %+v", lit)
	}
	if _, err := CompleteConfig(cfgSpec, &cfgInner{}); err == nil {
		t.Error("a config of another type was completed")
	}
}

func TestCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		set  func(c *cfgTest)
		want string
	}{
		{func(c *cfgTest) { c.Path = "p" }, "[]"},
		{func(c *cfgTest) {}, `[path: missing required parameter "path" for t]`},
		{func(c *cfgTest) { c.Path, c.Format = "p", "" }, `[format: invalid value "" (one of: a, b)]`}, // explicit: the default is "a"
		{func(c *cfgTest) { c.Path, c.Kind = "p", "z" }, `[kind: invalid value "z" (one of: x, y)]`},
		{func(c *cfgTest) { c.Path, c.Inner.Mode = "p", "fats" }, `[inner.mode: invalid value "fats", did you mean "fast"? (one of: fast, slow)]`},
		{func(c *cfgTest) { c.Path, c.Items = "p", []cfgInner{{Mode: "slow"}, {}, {Mode: "no"}} }, `[items.2.mode: invalid value "no" (one of: fast, slow)]`},
		{func(c *cfgTest) { c.Path, c.ByName = "p", map[string]string{"k": "r", "j": "p"} }, `[by_name.k: invalid value "r" (one of: p, q)]`},
	} {
		c := cfgSpec.NewConfig().(*cfgTest)
		tc.set(c)
		if got := fmt.Sprint(CheckConfig(cfgSpec, c)); got != tc.want {
			t.Errorf("CheckConfig(%+v) = %s, want %s", c, got, tc.want)
		}
	}
}
