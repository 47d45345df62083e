package zflow_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators"
	"github.com/zflowdev/zflow/pipelines"
)

// yamlMsgs lists the messages of a pipeline file's errors, without their
// file:line:col.
func yamlMsgs(t *testing.T, err error) []string {
	t.Helper()
	var list pipelines.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("YAML: want an ErrorList, got %v", err)
	}
	var out []string
	for _, e := range list {
		out = append(out, e.Msg)
	}
	slices.Sort(out)
	return out
}

// goMsgs lists Build's errors worded as the YAML decoder words them: an
// invalid value after its parameter's path, a missing parameter on its own
// (the decoder places it at the mapping that lacks it).
func goMsgs(t *testing.T, err error) []string {
	t.Helper()
	var errs engine.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Go: want engine.Errors, got %v", err)
	}
	var out []string
	for _, e := range errs {
		var ne *engine.NodeError
		if !errors.As(e, &ne) || ne.Field == "" {
			t.Fatalf("Go: want a NodeError naming a parameter, got %#v", e)
		}
		msg := ne.Msg
		if !strings.HasPrefix(msg, "missing required") {
			msg = ne.Field + ": " + msg
		}
		out = append(out, msg)
	}
	slices.Sort(out)
	return out
}

// TestBuilderChecksLikeYAML builds the twins of pipeline files with missing
// required parameters and values outside their enum: Build reports what
// Parse reports, each error naming the node and parameter.
func TestBuilderChecksLikeYAML(t *testing.T) {
	for _, tc := range []struct {
		name  string
		yaml  string
		build *zflow.Builder
		nodes []string // node.field of each Go error, sorted
	}{
		{
			name: "missing required",
			yaml: `version: 1
name: required
sources:
  trades: {type: generate, columns: [{name: a, type: int64}, {type: bool}]}
  file: {type: csv, header: true}
operators:
  few: {type: limit, inputs: [trades]}
  both: {type: union, inputs: [few, file]}
sinks:
  out: {type: parquet, inputs: [both]}
`,
			build: zflow.New("required").
				Source("trades", "generate", &operators.GenerateConfig{Columns: []operators.GenerateColumn{{Name: "a", Type: "int64"}, {Type: "bool"}}}).
				Source("file", "csv", &operators.CSVSourceConfig{Header: true}).
				Transform("few", "limit", &operators.LimitConfig{}, "trades").
				Transform("both", "union", nil, "few", "file").
				Sink("out", "parquet", nil, "both"),
			nodes: []string{"few.count", "file.path", "out.path", "trades.columns.1.name", "trades.rows"},
		},
		{
			name: "enum",
			yaml: `version: 1
name: enum
sources:
  trades:
    type: generate
    rows: 10
    columns:
      - {name: a, type: int46}
      - {name: b, type: decimal}
sinks:
  out: {type: stdout, inputs: [trades], format: jsonl}
  file: {type: parquet, inputs: [trades], path: x.parquet, compression: lz5}
`,
			build: zflow.New("enum").
				Source("trades", "generate", &operators.GenerateConfig{Rows: 10, Columns: []operators.GenerateColumn{{Name: "a", Type: "int46"}, {Name: "b", Type: "decimal"}}}).
				Sink("out", "stdout", &operators.StdoutConfig{Format: "jsonl"}, "trades").
				Sink("file", "parquet", zflow.Defaults(func(c *operators.ParquetSinkConfig) { c.Path, c.Compression = "x.parquet", "lz5" }), "trades"),
			nodes: []string{"file.compression", "out.format", "trades.columns.0.type", "trades.columns.1.type"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, yerr := zflow.Parse([]byte(tc.yaml), "twin.yaml")
			_, gerr := tc.build.Build()
			if yerr == nil || gerr == nil {
				t.Fatalf("want errors from both, got YAML %v, Go %v", yerr, gerr)
			}
			y, g := yamlMsgs(t, yerr), goMsgs(t, gerr)
			if !slices.Equal(y, g) {
				t.Errorf("Go and YAML differ:\nGo:\n  %s\nYAML:\n  %s", strings.Join(g, "\n  "), strings.Join(y, "\n  "))
			}
			var errs engine.Errors
			errors.As(gerr, &errs)
			var nodes []string
			for _, e := range errs {
				ne := e.(*engine.NodeError)
				nodes = append(nodes, ne.Node+"."+ne.Field)
			}
			slices.Sort(nodes)
			if !slices.Equal(nodes, tc.nodes) {
				t.Errorf("errors at %v, want %v", nodes, tc.nodes)
			}
		})
	}
}

// TestBuilderDefaults checks that a struct literal's zero fields take the
// operator's defaults, as the keys a pipeline file leaves out do, and that
// Defaults keeps an explicit false.
func TestBuilderDefaults(t *testing.T) {
	dir := t.TempDir()
	gen := &operators.GenerateConfig{Rows: 3, Columns: []operators.GenerateColumn{{Name: "n", Type: "int64", Sequence: true}}}
	run := func(p *zflow.Pipeline) {
		t.Helper()
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		if _, err := p.Run(context.Background(), zflow.WithAllocator(mem)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	plan := func(p *zflow.Pipeline) string {
		t.Helper()
		var b bytes.Buffer
		if err := p.Plan().WriteText(&b); err != nil {
			t.Fatal(err)
		}
		// The memory line comes from the file's settings, which a Builder
		// does not have.
		lines := strings.Split(b.String(), "\n")
		lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, "  memory: ") })
		return strings.Join(lines, "\n")
	}

	yp, err := zflow.Parse([]byte(`version: 1
name: defaults
sources:
  gen: {type: generate, rows: 3, columns: [{name: n, type: int64, sequence: true}]}
sinks:
  csv: {type: csv, inputs: [gen], path: `+filepath.Join(dir, "y.csv")+`}
  pq: {type: parquet, inputs: [gen], path: `+filepath.Join(dir, "y.parquet")+`}
`), "defaults.yaml")
	if err != nil {
		t.Fatal(err)
	}
	run(yp)

	csvCfg := &operators.CSVSinkConfig{Path: filepath.Join(dir, "y.csv")}
	gp, err := zflow.New("defaults").
		Source("gen", "generate", gen).
		Sink("csv", "csv", csvCfg, "gen").
		Sink("pq", "parquet", &operators.ParquetSinkConfig{Path: filepath.Join(dir, "y.parquet")}, "gen").
		Build()
	if err != nil {
		t.Fatalf("a literal relying on defaults: %v", err)
	}
	if !reflect.DeepEqual(*csvCfg, operators.CSVSinkConfig{Path: filepath.Join(dir, "y.csv")}) {
		t.Errorf("Build changed the config passed in: %+v", *csvCfg)
	}
	if g, y := plan(gp), plan(yp); g != y {
		t.Errorf("plans differ:\nGo:\n%s\nYAML:\n%s", g, y)
	}
	yamlCSV := read("y.csv")
	run(gp)
	if got := read("y.csv"); got != yamlCSV || !strings.HasPrefix(got, "n\n") {
		t.Errorf("Go wrote %q, YAML %q (want a header line, as by default)", got, yamlCSV)
	}

	// An explicit false where the default is true.
	np, err := zflow.New("no-header").
		Source("gen", "generate", gen).
		Sink("csv", "csv", zflow.Defaults(func(c *operators.CSVSinkConfig) {
			c.Path, c.Header = filepath.Join(dir, "n.csv"), false
		}), "gen").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	run(np)
	if got := read("n.csv"); got != "0\n1\n2\n" {
		t.Errorf("header: false wrote %q", got)
	}
}

// TestBuilderConfigType checks that a config of another operator's type is
// an error naming the node, not a panic in its Build.
func TestBuilderConfigType(t *testing.T) {
	_, err := zflow.New("types").
		Source("gen", "generate", &operators.GenerateConfig{Rows: 1, Columns: []operators.GenerateColumn{{Name: "n", Type: "int64"}}}).
		Transform("f", "filter", &operators.ProjectConfig{}, "gen").
		Transform("g", "filter", zflow.Defaults(func(c *operators.ProjectConfig) {}), "f").
		Sink("out", "discard", nil, "g").
		Build()
	for _, want := range []string{
		"f: config is *operators.ProjectConfig, want *operators.FilterConfig",
		"g: zflow.Defaults is given a func(*operators.ProjectConfig), but the operator's config is *operators.FilterConfig",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}
