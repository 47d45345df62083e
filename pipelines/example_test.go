package pipelines_test

import (
	"fmt"

	_ "github.com/zflowdev/zflow/operators" // registers the built-in operators
	"github.com/zflowdev/zflow/pipelines"
)

// Parse a pipeline and compile it with the built-in operators.
func ExampleParse() {
	src := []byte(`
version: 1
name: sample
sources:
  trades:
    type: generate
    rows: 1000
    columns:
      - {name: symbol, type: string, values: [AAPL, MSFT]}
      - {name: qty, type: int64, min: 1, max: 500}
operators:
  first: {type: limit, inputs: [trades], count: 10}
sinks:
  out: {type: discard, inputs: [first]}
`)
	p, err := pipelines.Parse(src, "sample.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := p.Compile()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Name, plan.NodeIDs(), plan.Schema("first"))
	// Output:
	// sample [trades first out] schema:
	//   fields: 2
	//     - symbol: type=utf8, nullable
	//     - qty: type=int64, nullable
}

// Every error of a file comes back at once, as file:line:col: message.
func ExampleErrorList() {
	src := []byte(`
version: 1
name: typos
sources:
  trades: {type: generate, rows: 10, sed: 7, columns: [{name: qty, type: int46}]}
sinks:
  out: {type: discard, inputs: [tardes]}
`)
	_, err := pipelines.Parse(src, "typos.yaml")
	fmt.Println(err)
	// Output:
	// typos.yaml:5:38: unknown parameter "sed" for generate, did you mean "seed"?
	// typos.yaml:5:74: columns.0.type: invalid value "int46", did you mean "int64"? (one of: int64, int32, float64, string, bool, timestamp)
	// typos.yaml:7:33: input "tardes" does not exist, did you mean "trades"?
}
