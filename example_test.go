package zflow_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators"
)

// Load a pipeline file, run it and print the summary `zflow run` prints.
// The body of this example is README.md's embedding snippet, word for word
// (TestReadme checks it). The stdout sink of the quickstart prints the
// preview; the summary goes to stderr, as the CLI's does.
func ExampleLoad() {
	p, err := zflow.Load("pipelines/examples/quickstart.yaml") // or zflow.Parse(src, "name.yaml")
	if err != nil {
		log.Fatal(err) // every problem in the file, as file:line:col: message
	}
	sum, err := p.Run(context.Background()) // options: zflow.WithAllocator, zflow.WithLogger, ...
	if err != nil {
		log.Fatal(err) // names the operator that failed; no sink has left a file
	}
	sum.WriteText(os.Stderr) // the summary table of zflow run, memory line included
	fmt.Println("rows written:", sum.Op("out").RowsIn)
	// Output:
	// ts                        symbol   qty               price            notional
	// ------------------------  -------  ---  ------------------  ------------------
	// 2024-01-02T09:30:00.003Z  SYM0001  341  149.77896993430988   51074.62874759967
	// 2024-01-02T09:30:00.008Z  SYM0003  491  312.56480881239617  153469.32112688653
	// 2024-01-02T09:30:00.009Z  SYM0003  367  180.02907509887163    66070.6705612859
	// 2024-01-02T09:30:00.018Z  SYM0001  625  188.77550254932615  117984.68909332884
	// 2024-01-02T09:30:00.027Z  SYM0002  594   406.9302269118123  241716.55478561652
	// rows written: 269748
}

// Parse a pipeline held in memory and run it on a checked allocator.
func ExampleParse() {
	src := []byte(`
version: 1
name: tiny
sources:
  nums:
    type: generate
    rows: 1000
    columns: [{name: n, type: int64, sequence: true, min: 0, max: 999}]
operators:
  even: {type: filter, inputs: [nums], where: "n % 2 = 0"}
sinks:
  out: {type: discard, inputs: [even]}
`)
	p, err := zflow.Parse(src, "tiny.yaml")
	if err != nil {
		log.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	sum, err := p.Run(context.Background(), zflow.WithAllocator(mem))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("rows kept:", sum.Op("out").RowsIn, "bytes outstanding:", mem.CurrentAlloc())
	// Output: rows kept: 500 bytes outstanding: 0
}

// Errors in a pipeline file point at the place, with a suggestion.
func ExampleParse_errors() {
	src := []byte(`
version: 1
name: typo
sources:
  nums: {type: generate, rows: 10, columns: [{name: qty, type: int64}]}
operators:
  big: {type: filter, inputs: [nums], where: "qyt > 5"}
sinks:
  out: {type: discard, inputs: [big]}
`)
	_, err := zflow.Parse(src, "typo.yaml")
	fmt.Println(err)
	// Output: typo.yaml:7:47: unknown column "qyt", did you mean "qty"?
}

// Build a pipeline in Go, without YAML.
func ExampleNew() {
	gen := &operators.GenerateConfig{Rows: 100, Seed: 7, Columns: []operators.GenerateColumn{
		{Name: "id", Type: "int64", Sequence: true, Min: 1, Max: 100},
		{Name: "price", Type: "float64", Min: 1, Max: 2},
	}}
	p, err := zflow.New("in-go").
		Source("gen", "generate", gen).
		Transform("cheap", "filter", &operators.FilterConfig{Where: "id <= 10"}, "gen").
		Transform("shape", "project", &operators.ProjectConfig{Columns: []string{"id", "price * 100 AS cents"}}, "cheap").
		Sink("out", "discard", nil, "shape").
		Build()
	if err != nil {
		log.Fatal(err)
	}
	sum, err := p.Run(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Plan().Schema("shape"))
	fmt.Println("rows:", sum.Op("out").RowsIn)
	// Output:
	// schema:
	//   fields: 2
	//     - id: type=int64, nullable
	//     - cents: type=float64, nullable
	// rows: 10
}

// upperConfig is the config of a custom transform that upper-cases one
// string column.
type upperConfig struct {
	Column string `zflow:"column" required:"true" doc:"the string column to upper-case"`
}

type upperFactory struct {
	schema *arrow.Schema
	col    int
}

func (f *upperFactory) Schema() *arrow.Schema { return f.schema }
func (f *upperFactory) New(ic *engine.InstanceContext) (any, error) {
	return &upper{f: f, mem: ic.Alloc}, nil
}

type upper struct {
	f   *upperFactory
	mem memory.Allocator
}

// Process builds the new column and shares every other column by reference.
func (u *upper) Process(ctx context.Context, _ int, in arrow.RecordBatch, out engine.Emitter) error {
	src := in.Column(u.f.col).(*array.String)
	b := array.NewStringBuilder(u.mem)
	defer b.Release()
	for i := 0; i < src.Len(); i++ {
		if src.IsNull(i) {
			b.AppendNull()
		} else {
			b.Append(strings.ToUpper(src.Value(i)))
		}
	}
	col := b.NewArray()
	defer col.Release()
	cols := append([]arrow.Array(nil), in.Columns()...)
	cols[u.f.col] = col
	return out.Emit(array.NewRecordBatch(u.f.schema, cols, in.NumRows()))
}

// Register a custom operator from user code and use it from YAML.
func ExampleRegister() {
	err := zflow.Register(engine.Spec{
		Name: "upper", Kind: engine.KindTransform, Parallel: true, MinInputs: 1, MaxInputs: 1,
		Summary:   "upper-case a string column",
		NewConfig: func() any { return &upperConfig{} },
		Build: func(bc *engine.BuildContext, c any) (engine.Factory, error) {
			cfg := c.(*upperConfig)
			idx := bc.Inputs[0].FieldIndices(cfg.Column)
			if len(idx) != 1 || bc.Inputs[0].Field(idx[0]).Type.ID() != arrow.STRING {
				return nil, engine.Errf("column", "no string column %q", cfg.Column)
			}
			return &upperFactory{schema: bc.Inputs[0], col: idx[0]}, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	p, err := zflow.Parse([]byte(`
version: 1
name: custom
sources:
  s: {type: generate, rows: 3, columns: [{name: sym, type: string, values: [abc]}]}
operators:
  u: {type: upper, inputs: [s], column: sym}
sinks:
  out: {type: stdout, inputs: [u], format: csv}
`), "custom.yaml")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := p.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// sym
	// ABC
	// ABC
	// ABC
}

// The whole definition of a custom transform, config included, is the 18
// lines from "type upperCaseConfig" to the end of upperCase: zflow.Map makes
// the engine.Spec (parameters, compile-time checks, parallel instances),
// zflow.Column finds the column or says what is wrong with it, and
// zflow.SetColumn makes the output batch, which shares every other column
// with the input.
type upperCaseConfig struct {
	Column string `zflow:"column" required:"true" doc:"the string column"`
}

var upperCase = zflow.Map("upper_case", "upper-case a string column", func(cfg *upperCaseConfig, in *arrow.Schema) (*arrow.Schema, zflow.BatchFunc, error) {
	i, err := zflow.Column(in, "column", cfg.Column, arrow.STRING)
	return in, func(mem memory.Allocator, b arrow.RecordBatch) (arrow.RecordBatch, error) {
		col, up := b.Column(i).(*array.String), array.NewStringBuilder(mem)
		defer up.Release()
		for r := range col.Len() {
			if col.IsNull(r) {
				up.AppendNull()
				continue
			}
			up.Append(strings.ToUpper(col.Value(r)))
		}
		return zflow.SetColumn(b, i, up.NewArray()), nil
	}, err
})

// Define a custom transform with zflow.Map, register it and use it from
// YAML; a wrong column is a compile error at its place in the file, and a
// null stays null (the empty field).
func ExampleMap() {
	if err := zflow.Register(upperCase); err != nil {
		log.Fatal(err)
	}
	src := `
version: 1
name: shout
sources:
  s: {type: generate, rows: 4, seed: 4, columns: [{name: sym, type: string, values: [abc, de], null_ratio: 0.3}, {name: n, type: int64, sequence: true}]}
operators:
  u: {type: upper_case, inputs: [s], column: %s}
sinks:
  out: {type: stdout, inputs: [u], format: csv}
`
	_, err := zflow.Parse([]byte(fmt.Sprintf(src, "n")), "shout.yaml")
	fmt.Println(err)
	p, err := zflow.Parse([]byte(fmt.Sprintf(src, "sym")), "shout.yaml")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := p.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// shout.yaml:7:46: column "n" is int64, want string
	// sym,n
	// DE,0
	// ,1
	// ABC,2
	// ABC,3
}

// ExamplePipeline_Run_summary prints a run's summary the way `zflow run`
// does, from an embedding program (times vary, so only the first words
// are shown here).
func ExamplePipeline_Run_summary() {
	p, err := zflow.Parse([]byte(`
version: 1
name: tiny
settings: {memory: {arena: heap}}
sources:
  gen: {type: generate, rows: 1000, columns: [{name: qty, type: int64}]}
sinks:
  out: {type: discard, inputs: [gen]}
`), "tiny.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	sum, err := p.Run(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	var b strings.Builder
	sum.WriteText(&b)
	fmt.Println(strings.Fields(b.String())[:3])
	// Output: [pipeline "tiny" ok]
}

// A pipeline whose path is "-" reads the standard input and writes the
// standard output its caller gives it: here a string in and a buffer out.
// The reader is given when the pipeline is compiled (the csv source reads
// its header and infers its types then, without consuming it), the writer
// when it runs.
func ExampleWithStdin() {
	src := []byte(`
version: 1
name: filter_stdin
sources:
  in: {type: csv, path: "-"}
operators:
  big: {type: filter, inputs: [in], where: "qty > 100"}
sinks:
  out: {type: ndjson, inputs: [big], path: "-"}
`)
	in := strings.NewReader("symbol,qty\nAAPL,200\nMSFT,50\nNVDA,300\n")
	p, err := zflow.Parse(src, "filter_stdin.yaml", zflow.WithStdin(in))
	if err != nil {
		log.Fatal(err)
	}
	var out strings.Builder
	if _, err := p.Run(context.Background(), zflow.WithStdout(&out)); err != nil {
		log.Fatal(err)
	}
	fmt.Print(out.String())
	// Output:
	// {"symbol":"AAPL","qty":200}
	// {"symbol":"NVDA","qty":300}
}
