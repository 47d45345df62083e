package pipelines

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

const goodPipeline = `# a good pipeline
version: 1
name: vwap
settings:
  batch_rows: 1024
  edge_capacity: 8
  memory: {arena: hugepage, page: 1GiB, node: 0, budget: 2GiB, lock: true, prefault: true}
  trace: {exporter: otlp, endpoint: "localhost:4317", sampling: 0.5}
x-cols: &cols
  - {name: symbol, type: string, values: [AAPL, MSFT]}
  - {name: qty, type: int64, min: 0, max: 1000}
sources:
  trades: {type: gen, rows: 1e6, seed: 7, columns: *cols, interval: 250ms, buffer: 64KiB}
  more: {type: csv, path: "${DIR:-data}/more.csv", header: true}
operators:
  big:
    type: filter
    inputs: [trades]
    where: |
      qty > 100 AND symbol IN ('AAPL', 'MSFT')
    parallelism: 2
    ordered: false
  both: {type: union, inputs: [big, more]}
sinks:
  out: {type: stdout, inputs: both, format: json}
`

func testOpts(env map[string]string) []Option {
	return []Option{WithRegistry(newTestRegistry()), WithEnv(mapEnv(env))}
}

func TestParseGood(t *testing.T) {
	p, err := Parse([]byte(goodPipeline), "good.yaml", testOpts(map[string]string{"DIR": "/d"})...)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "vwap" || p.Version != 1 || p.File != "good.yaml" {
		t.Errorf("header: %q %d %q", p.Name, p.Version, p.File)
	}
	wantSettings := Settings{
		BatchRows: 1024, EdgeCapacity: 8,
		Memory:  MemorySettings{Arena: "hugepage", Page: 1 << 30, Node: 0, Budget: 2 << 30, Lock: true, Prefault: true, arenaWritten: true},
		Trace:   TraceSettings{Exporter: "otlp", Protocol: "grpc", Endpoint: "localhost:4317", Sampling: 0.5, Timeout: 5 * time.Second},
		Metrics: MetricSettings{Exporter: "none", Protocol: "grpc", Interval: 10 * time.Second},
		Cluster: DefaultSettings().Cluster,
	}
	if !reflect.DeepEqual(p.Settings, wantSettings) {
		t.Errorf("settings: got %+v\nwant %+v", p.Settings, wantSettings)
	}
	cols := []testColumn{{Name: "symbol", Type: "string", Values: []any{"AAPL", "MSFT"}}, {Name: "qty", Type: "int64", Max: 1000}}
	want := &engine.Graph{
		Name: "vwap",
		Settings: engine.Settings{BatchRows: 1024, EdgeCapacity: 8, Memory: buffers.PoolConfig{
			Kind: "hugepage", Page: 1 << 30, Bind: true, Node: 0, Budget: 2 << 30, Lock: true, Prefault: true}},
		Nodes: []*engine.Node{
			{ID: "trades", Kind: engine.KindSource, Type: "gen", Config: &testGenConfig{Rows: 1e6, Seed: 7, Columns: cols, Interval: 250 * time.Millisecond, Buffer: 64 << 10}},
			{ID: "more", Kind: engine.KindSource, Type: "csv", Config: &testCSVConfig{Path: "/d/more.csv", Header: true, Delimiter: ","}},
			{ID: "big", Kind: engine.KindTransform, Type: "filter", Inputs: []string{"trades"}, Parallelism: 2, Unordered: true,
				Config: &testFilterConfig{Where: "qty > 100 AND symbol IN ('AAPL', 'MSFT')\n"}},
			{ID: "both", Kind: engine.KindTransform, Type: "union", Inputs: []string{"big", "more"}, Config: &struct{}{}},
			{ID: "out", Kind: engine.KindSink, Type: "stdout", Inputs: []string{"both"}, Config: &testStdoutConfig{Format: "json"}},
		},
	}
	if !reflect.DeepEqual(p.Graph, want) {
		for i := range max(len(p.Graph.Nodes), len(want.Nodes)) {
			if i < len(p.Graph.Nodes) && i < len(want.Nodes) && !reflect.DeepEqual(p.Graph.Nodes[i], want.Nodes[i]) {
				t.Errorf("node %d:\ngot  %+v %+v\nwant %+v %+v", i, p.Graph.Nodes[i], p.Graph.Nodes[i].Config, want.Nodes[i], want.Nodes[i].Config)
			}
		}
		t.Errorf("graph: got %+v, want %+v", p.Graph, want)
	}
	plan, err := p.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.NodeIDs(); len(got) != 5 {
		t.Errorf("plan nodes %v", got)
	}
}

func TestDefaults(t *testing.T) {
	src := "version: 1\nname: d\nsources:\n  s: {type: csv, path: x}\nsinks:\n  o: {type: stdout, inputs: [s]}\n"
	p, err := Parse([]byte(src), "d.yaml", testOpts(nil)...)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Settings, DefaultSettings()) {
		t.Errorf("settings %+v", p.Settings)
	}
	if p.Graph.Settings != engine.DefaultSettings() {
		t.Errorf("engine settings %+v", p.Graph.Settings)
	}
	if n := p.Graph.Nodes[1]; n.Parallelism != 0 || n.Unordered {
		t.Errorf("node %+v", n)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte(goodPipeline), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path, testOpts(nil)...)
	if err != nil {
		t.Fatal(err)
	}
	if p.File != path {
		t.Errorf("file %q", p.File)
	}
	if _, err := Load(filepath.Join(dir, "nope.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestErrorsAs(t *testing.T) {
	_, err := Parse([]byte("version: 2\nname: x\n"), "v.yaml", testOpts(nil)...)
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 3 {
		t.Fatalf("ErrorList: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.File != "v.yaml" || e.Line != 1 || e.Col != 1 {
		t.Fatalf("*Error: %+v", e)
	}
	if list[0].Error() != `v.yaml:1:1: missing section "sources" (a pipeline needs at least one source)` {
		t.Errorf("first: %v", list[0])
	}
	if (&Error{File: "f", Msg: "m"}).Error() != "f: m" || (&Error{File: "f", Line: 3, Msg: "m"}).Error() != "f:3: m" {
		t.Error("Error() without a position")
	}
}

// TestCompileErrorPositions checks that errors from Build land inside the
// expression, whatever the YAML style of the value.
func TestCompileErrorPositions(t *testing.T) {
	head := "version: 1\nname: c\nsources:\n  s: {type: csv, path: x}\nsinks:\n  o: {type: stdout, inputs: [f]}\noperators:\n"
	for _, tc := range []struct {
		name, op string
		want     string
		env      string // COND
	}{
		{"plain", "  f: {type: filter, inputs: [s], where: qty > 1 AND nope}", `c.yaml:8:53: unknown column "nope"`, ""},
		{"single", "  f: {type: filter, inputs: [s], where: 'symbol = ''x'' AND nope'}", `c.yaml:8:61: unknown column "nope"`, ""},
		{"double", `  f: {type: filter, inputs: [s], where: "symbol = 'x'\tAND\u0020nope"}`, `c.yaml:8:65: unknown column "nope"`, ""},
		{"literal", "  f:\n    type: filter\n    inputs: [s]\n    where: |\n      qty > 1\n        AND nope", `c.yaml:13:13: unknown column "nope"`, ""},
		{"folded", "  f:\n    type: filter\n    inputs: [s]\n    where: >-\n      qty > 1\n      AND nope", `c.yaml:13:11: unknown column "nope"`, ""},
		{"plain multiline", "  f:\n    type: filter\n    inputs: [s]\n    where: qty > 1\n      AND nope", `c.yaml:12:11: unknown column "nope"`, ""},
		{"env", "  f: {type: filter, inputs: [s], where: \"${COND} AND nope\"}", `c.yaml:8:54: unknown column "nope"`, "qty > 2"},
		{"from env", "  f: {type: filter, inputs: [s], where: \"qty > 1 AND ${COND}\"}", `c.yaml:8:54: unknown column "qtyy"`, "qtyy > 2"},
		{"nested field", "  f: {type: project, inputs: [s], columns: {a: qty, b: 'price * nope'}}", `c.yaml:8:65: unknown column "nope"`, ""},
		{"list field", "  f: {type: sort, inputs: [s], by: [qty, nope]}", `c.yaml:8:42: unknown column "nope"`, ""},
		{"expr syntax", "  f: {type: filter, inputs: [s], where: 'qty @ 1'}", `c.yaml:8:46: syntax error: unexpected '@'`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(head+tc.op+"\n"), "c.yaml", testOpts(map[string]string{"COND": tc.env})...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Compile()
			if err == nil || err.Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestNodeErrorPlacement(t *testing.T) {
	p, err := Parse([]byte(goodPipeline), "g.yaml", testOpts(nil)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ne   engine.NodeError
		want string
	}{
		{engine.NodeError{Node: "big", Offset: -1, Msg: "m"}, "g.yaml:16:3: m"},
		{engine.NodeError{Node: "big", Field: "type", Offset: -1, Msg: "m"}, "g.yaml:17:11: m"},
		{engine.NodeError{Node: "big", Field: "inputs.0", Offset: -1, Msg: "m"}, "g.yaml:18:14: m"},
		{engine.NodeError{Node: "out", Field: "inputs.0", Offset: -1, Msg: "m"}, "g.yaml:25:31: m"},
		{engine.NodeError{Node: "big", Field: "where", Offset: 4, Msg: "m"}, "g.yaml:20:11: m"},
		{engine.NodeError{Node: "big", Field: "where", Offset: 1000, Msg: "m"}, "g.yaml:21:1: m"},
		{engine.NodeError{Node: "trades", Field: "columns.1.max", Offset: -1, Msg: "m"}, "g.yaml:11:43: m"},
		{engine.NodeError{Node: "trades", Field: "columns.7.max", Offset: -1, Msg: "m"}, "g.yaml:10:3: m"},
		{engine.NodeError{Node: "trades", Field: "nothere", Offset: -1, Msg: "m"}, "g.yaml:13:3: m"},
		{engine.NodeError{Node: "ghost", Field: "x", Offset: -1, Msg: "m"}, "g.yaml: ghost.x: m"},
	} {
		if got := p.Locate(&tc.ne).Error(); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.ne, got, tc.want)
		}
	}
}

func TestErrorListSorted(t *testing.T) {
	src := "sinks:\n  o: {type: stdout, inputs: [zz]}\nname: 5\nversion: 3\nbogus: 1\nsources:\n  s: {type: csv}\n"
	_, err := Parse([]byte(src), "m.yaml", testOpts(nil)...)
	got := strings.Split(err.Error(), "\n")
	want := []string{
		`m.yaml:2:30: input "zz" does not exist`,
		`m.yaml:4:10: unsupported version 3 (this zflow reads version 1)`,
		`m.yaml:5:1: unknown top-level key "bogus" (known: version, name, settings, sources, operators, sinks; keys starting with x- are ignored)`,
		`m.yaml:7:6: missing required parameter "path" for csv`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParallelismAndThreads(t *testing.T) {
	src := "version: 1\nname: d\nsettings: {threads: 3}\nsources:\n  s: {type: csv, path: x, parallelism: auto}\n" +
		"operators:\n  f: {type: filter, inputs: [s], where: \"true\", parallelism: 2}\nsinks:\n  o: {type: stdout, inputs: [f]}\n"
	p, err := Parse([]byte(src), "d.yaml", testOpts(nil)...)
	if err != nil {
		t.Fatal(err)
	}
	if p.Settings.Threads != 3 || p.Graph.Settings.Threads != 3 {
		t.Errorf("threads %v, engine %d", p.Settings.Threads, p.Graph.Settings.Threads)
	}
	byID := map[string]int{}
	for _, n := range p.Graph.Nodes {
		byID[n.ID] = n.Parallelism
	}
	if byID["s"] != 0 || byID["f"] != 2 || byID["o"] != 0 {
		t.Errorf("parallelism %v, want s auto (0), f 2, o auto", byID)
	}
	for _, bad := range []string{"0", "-2", "many", "1.5"} {
		_, err := Parse([]byte(strings.Replace(src, "threads: 3", "threads: "+bad, 1)), "d.yaml", testOpts(nil)...)
		if err == nil || !strings.Contains(err.Error(), "d.yaml:3:") || !strings.Contains(err.Error(), "want auto or a whole number ≥ 1") {
			t.Errorf("threads %s: %v", bad, err)
		}
	}
}
