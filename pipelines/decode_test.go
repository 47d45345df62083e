package pipelines

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zflowdev/zflow/engine"
)

type nested struct {
	X int    `zflow:"x" required:"true"`
	Y string `zflow:"y"`
}

type kitchen struct {
	S   string            `zflow:"s"`
	E   string            `zflow:"e" enum:"fast,slow,auto"`
	B   bool              `zflow:"b"`
	I   int               `zflow:"i"`
	I8  int8              `zflow:"i8"`
	U   uint16            `zflow:"u"`
	F   float64           `zflow:"f"`
	F32 float32           `zflow:"f32"`
	D   time.Duration     `zflow:"d"`
	Z   engine.Size       `zflow:"z"`
	L   []string          `zflow:"l"`
	LE  []string          `zflow:"le" enum:"x,y"`
	LI  []int             `zflow:"li"`
	LL  [][]int           `zflow:"ll"`
	M   map[string]int    `zflow:"m"`
	N   nested            `zflow:"n"`
	LN  []nested          `zflow:"ln"`
	MN  map[string]nested `zflow:"mn"`
	P   *int              `zflow:"p"`
	PN  *nested           `zflow:"pn"`
	A   any               `zflow:"a"`
	T   NUMANode          `zflow:"t"`
	R   string            `zflow:"r" required:"true"`
	Off int               `zflow:"-"`
}

func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// decodeYAML decodes the mapping in src into cfg and returns the errors as
// "line:col: message".
func decodeYAML(t *testing.T, src string, cfg any, env map[string]string) []string {
	t.Helper()
	s := newSource([]byte(src))
	e := &errs{file: "t"}
	root := parseYAML(s, mapEnv(env), e)
	if root != nil {
		d := &decoder{src: s, errs: e}
		d.decodeStruct(root, structValue(cfg), "", &decodeCtx{noun: "parameter", owner: "kitchen"}, nil)
	}
	var out []string
	for _, err := range e.sorted() {
		out = append(out, strings.TrimPrefix(err.Error(), "t:"))
	}
	return out
}

func TestDecodeTypes(t *testing.T) {
	src := `
r: required
s: hello
e: slow
b: true
i: -42
i8: 1e2
u: 0xFF
f: 2.5
f32: 3
d: 1m30s
z: 2GiB
l: [a, 'b', "c"]
le: x
li:
  - 1
  - 2
ll: [[1, 2], [3]]
m: {one: 1, two: 2}
n: {x: 7, y: why}
ln:
  - {x: 1}
  - x: 2
    y: two
mn: {k: {x: 3}}
p: 5
pn: {x: 9}
a: {list: [1, 2.5, true, null, str], n: 18446744073709551615}
t: auto
`
	var c kitchen
	if errs := decodeYAML(t, src, &c, nil); len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	five := 5
	want := kitchen{
		R: "required", S: "hello", E: "slow", B: true, I: -42, I8: 100, U: 255, F: 2.5, F32: 3,
		D: 90 * time.Second, Z: 2 << 30, L: []string{"a", "b", "c"}, LE: []string{"x"}, LI: []int{1, 2},
		LL: [][]int{{1, 2}, {3}}, M: map[string]int{"one": 1, "two": 2}, N: nested{7, "why"},
		LN: []nested{{X: 1}, {2, "two"}}, MN: map[string]nested{"k": {X: 3}}, P: &five, PN: &nested{X: 9},
		A: map[string]any{"list": []any{int64(1), 2.5, true, nil, "str"}, "n": uint64(math.MaxUint64)},
		T: AutoNode,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestDecodeKeepsDefaults(t *testing.T) {
	c := kitchen{S: "default", I: 3, L: []string{"keep"}}
	if errs := decodeYAML(t, "r: x\ni: 4\n", &c, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	if c.S != "default" || c.I != 4 || len(c.L) != 1 {
		t.Errorf("defaults not kept: %+v", c)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"missing required", "s: x\n", []string{`1:1: missing required parameter "r" for kitchen`}},
		{"unknown suggest", "r: x\nss: 1\n", []string{`2:1: unknown parameter "ss" for kitchen, did you mean "s"?`}},
		{"unknown list", "r: x\nzzzzzz: 1\n", []string{`2:1: unknown parameter "zzzzzz" for kitchen (known: s, e, b, i, i8, u, f, f32, d, z, l, le, li, ll, m, n, ln, mn, p, pn, a, t, r)`}},
		{"string got list", "r: x\ns: [a]\n", []string{`2:4: s: expected string, got list`}},
		{"string got map", "r: x\ns: {a: 1}\n", []string{`2:4: s: expected string, got map`}},
		{"string got null", "r: x\ns:\n", []string{`2:1: s: expected string, got null`}},
		{"string got explicit null", "r: x\ns: ~\n", []string{`2:4: s: expected string, got null`}},
		{"flow null", "r: x\nn: {x: , y: 1}\n", []string{`2:5: n.x: expected int, got null`}},
		{"enum", "r: x\ne: fats\n", []string{`2:4: e: invalid value "fats", did you mean "fast"? (one of: fast, slow, auto)`}},
		{"enum no suggestion", "r: x\ne: zzzzzz\n", []string{`2:4: e: invalid value "zzzzzz" (one of: fast, slow, auto)`}},
		{"enum in list", "r: x\nle: [x, q]\n", []string{`2:9: le.1: invalid value "q" (one of: x, y)`}},
		{"bool", "r: x\nb: yes\n", []string{`2:4: b: expected bool (true or false), got string "yes"`}},
		{"int got string", "r: x\ni: ten\n", []string{`2:4: i: expected int, got string "ten"`}},
		{"int got float", "r: x\ni: 1.5\n", []string{`2:4: i: expected int, got float 1.5`}},
		{"int8 overflow", "r: x\ni8: 300\n", []string{`2:5: i8: 300 is out of range for int8`}},
		{"uint negative", "r: x\nu: -1\n", []string{`2:4: u: must be ≥ 0, got -1`}},
		{"uint overflow", "r: x\nu: 70000\n", []string{`2:4: u: 70000 is out of range for uint16`}},
		{"int huge", "r: x\ni: 18446744073709551615\n", []string{`2:4: i: 18446744073709551615 is out of range for int`}},
		{"float got string", "r: x\nf: much\n", []string{`2:4: f: expected float, got string "much"`}},
		{"float32 overflow", "r: x\nf32: 1e300\n", []string{`2:6: f32: 1e300 is out of range for float32`}},
		{"duration", "r: x\nd: 5 seconds\n", []string{`2:4: d: invalid duration "5 seconds" (want e.g. 500ms, 5s, 1m30s)`}},
		{"duration int", "r: x\nd: 5\n", []string{`2:4: d: invalid duration 5: add a unit (like 500ms, 5s, 1m30s)`}},
		{"duration list", "r: x\nd: [5s]\n", []string{`2:4: d: expected duration (like 500ms, 5s, 1m30s), got list`}},
		{"size", "r: x\nz: 2GB5\n", []string{`2:4: z: invalid size "2GB5" (want e.g. 64KiB, 2GiB, 4096)`}},
		{"size negative", "r: x\nz: -1\n", []string{`2:4: z: size must be ≥ 0, got -1`}},
		{"size bool", "r: x\nz: true\n", []string{`2:4: z: expected size (like 4096, 64KiB, 2GiB), got bool true`}},
		{"list got map", "r: x\nl: {a: 1}\n", []string{`2:4: l: expected list of string, got map`}},
		{"list of int got scalar string", "r: x\nli: a\n", []string{`2:5: li: expected int, got string "a"`}},
		{"list elem", "r: x\nli: [1, two, 3.5]\n", []string{`2:9: li.1: expected int, got string "two"`, `2:14: li.2: expected int, got float 3.5`}},
		{"list of list", "r: x\nll: [{a: 1}]\n", []string{`2:6: ll.0: expected list of int, got map`}},
		{"map got list", "r: x\nm: [1]\n", []string{`2:4: m: expected map of int, got list`}},
		{"map value", "r: x\nm: {a: x}\n", []string{`2:8: m.a: expected int, got string "x"`}},
		{"nested unknown", "r: x\nn: {x: 1, z: 2}\n", []string{`2:11: unknown parameter "z" in n for kitchen (known: x, y)`}},
		{"nested suggest", "r: x\nn: {x: 1, yy: 2}\n", []string{`2:11: unknown parameter "yy" in n for kitchen, did you mean "y"?`}},
		{"nested missing", "r: x\nn: {y: a}\n", []string{`2:4: missing required parameter "x" in n for kitchen`}},
		{"nested not map", "r: x\nn: 5\n", []string{`2:4: n: expected object (a map of parameters), got int`}},
		{"list of struct", "r: x\nln:\n  - {x: 1}\n  - {y: 2}\n  - x: a\n", []string{
			`4:5: missing required parameter "x" in ln.1 for kitchen`,
			`5:8: ln.2.x: expected int, got string "a"`,
		}},
		{"map of struct", "r: x\nmn: {k: {x: [1]}}\n", []string{`2:13: mn.k.x: expected int, got list`}},
		{"pointer null", "r: x\np: null\npn: ~\n", nil},
		{"pointer bad", "r: x\np: a\n", []string{`2:4: p: expected int, got string "a"`}},
		{"text unmarshaler", "r: x\nt: near\n", []string{`2:4: t: invalid NUMA node "near" (want auto or a node number like 0)`}},
		{"text unmarshaler list", "r: x\nt: [1]\n", []string{`2:4: t: expected int, got list`}},
		{"not a map", "[1, 2]\n", []string{`1:1: expected a map of parameters, got list`}},
		{"many errors", "s: [1]\ni: x\nb: 1\n", []string{
			`1:1: missing required parameter "r" for kitchen`,
			`1:4: s: expected string, got list`,
			`2:4: i: expected int, got string "x"`,
			`3:4: b: expected bool (true or false), got int 1`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c kitchen
			got := decodeYAML(t, tc.src, &c, nil)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

func TestDecodeStringTakesScalars(t *testing.T) {
	for src, want := range map[string]string{
		"s: 0x1F": "0x1F", "s: 12": "12", "s: 1.50": "1.50", "s: true": "true", "s: !!str 7": "7",
		`s: "a\tb"`: "a\tb", "s: 'it''s'": "it's",
	} {
		var c kitchen
		if errs := decodeYAML(t, "r: x\n"+src+"\n", &c, nil); len(errs) > 0 || c.S != want {
			t.Errorf("%s: got %q, %v; want %q", src, c.S, errs, want)
		}
	}
}

func TestDecodeEnvNumbers(t *testing.T) {
	env := map[string]string{"N": "12", "B": "true", "F": "0.5", "D": "2s", "Z": "1MiB", "BAD": "x"}
	var c kitchen
	errs := decodeYAML(t, "r: x\ni: ${N}\nb: ${B}\nf: ${F}\nd: ${D}\nz: ${Z}\nu: ${U:-7}\n", &c, env)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if c.I != 12 || !c.B || c.F != 0.5 || c.D != 2*time.Second || c.Z != 1<<20 || c.U != 7 {
		t.Errorf("got %+v", c)
	}
	got := decodeYAML(t, "r: x\ni: ${BAD}\nb: '12'\n", &kitchen{}, env)
	want := []string{`2:4: i: expected int, got string "x"`, `3:4: b: expected bool (true or false), got string "12"`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDecodeAliasesAndMerge(t *testing.T) {
	src := `
r: &r req
s: *r
n: &n {x: 1, y: base}
ln: [*n, {<<: *n, y: over}]
`
	var c kitchen
	if errs := decodeYAML(t, src, &c, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	if c.S != "req" || c.N.Y != "base" || len(c.LN) != 2 || c.LN[1].X != 1 || c.LN[1].Y != "over" {
		t.Errorf("got %+v", c)
	}
	got := decodeYAML(t, "r: *nope\n", &kitchen{}, nil)
	if len(got) != 1 || got[0] != "1:4: alias *nope refers to no anchor &nope defined before it" {
		t.Errorf("got %q", got)
	}
}

func TestDecodeAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("r: x\na0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("a: *a8\n")
	s := newSource([]byte(b.String()))
	e := &errs{file: "t"}
	root := parseYAML(s, mapEnv(nil), e)
	var c struct {
		R string `zflow:"r"`
		A any    `zflow:"a"`
	}
	d := &decoder{src: s, errs: e}
	d.decodeStruct(root, structValue(&c), "", &decodeCtx{noun: "parameter"}, func(k string) bool { return k != "r" && k != "a" })
	if len(e.list) != 1 || !strings.Contains(e.list[0].Msg, "too many values") {
		t.Errorf("got %v", e.sorted())
	}
}
