package pipelines

import (
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/zflowdev/zflow/engine"
)

// A registry of small test operators, so the package's tests do not depend
// on the real operators (which have their own tests). The filter checks its
// expression just enough to report unknown columns at an offset, which is
// what the position mapping needs.

type testColumn struct {
	Name      string  `zflow:"name" required:"true"`
	Type      string  `zflow:"type" required:"true" enum:"int64,float64,string,bool"`
	Min       float64 `zflow:"min"`
	Max       float64 `zflow:"max"`
	NullRatio float64 `zflow:"null_ratio"`
	Values    []any   `zflow:"values"`
}

type testGenConfig struct {
	Rows     int64         `zflow:"rows" doc:"rows to make"`
	Seed     int64         `zflow:"seed"`
	Columns  []testColumn  `zflow:"columns" required:"true"`
	Interval time.Duration `zflow:"interval"`
	Buffer   engine.Size   `zflow:"buffer"`
}

type testCSVConfig struct {
	Path      string `zflow:"path" required:"true"`
	Header    bool   `zflow:"header"`
	Delimiter string `zflow:"delimiter"`
}

type testFilterConfig struct {
	Where string `zflow:"where" required:"true"`
}

type testSortConfig struct {
	By []string `zflow:"by" required:"true"`
}

type testLimitConfig struct {
	Count int64 `zflow:"count" required:"true"`
}

type testProjectConfig struct {
	Columns map[string]string `zflow:"columns" required:"true"`
}

type testStdoutConfig struct {
	Format string `zflow:"format" enum:"table,csv,json"`
}

type testFileSinkConfig struct {
	Path string `zflow:"path" required:"true"`
}

type schemaFactory struct{ s *arrow.Schema }

func (f schemaFactory) Schema() *arrow.Schema { return f.s }
func (f schemaFactory) New(*engine.InstanceContext) (any, error) {
	return nil, fmt.Errorf("test factory")
}

var testTypes = map[string]arrow.DataType{
	"int64": arrow.PrimitiveTypes.Int64, "float64": arrow.PrimitiveTypes.Float64,
	"string": arrow.BinaryTypes.String, "bool": arrow.FixedWidthTypes.Boolean,
}

// checkExpr reports the first identifier in expr that is not a column of s.
func checkExpr(field, expr string, s *arrow.Schema) error {
	keywords := map[string]bool{"AND": true, "OR": true, "NOT": true, "IN": true, "true": true, "false": true}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(expr[i+1:], '\'')
			if j < 0 {
				return &engine.FieldError{Field: field, Offset: i, Msg: "unterminated string"}
			}
			i += j + 2
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(expr) && (expr[j] == '_' || expr[j] >= 'a' && expr[j] <= 'z' || expr[j] >= 'A' && expr[j] <= 'Z' || expr[j] >= '0' && expr[j] <= '9') {
				j++
			}
			if w := expr[i:j]; !keywords[w] && len(s.FieldIndices(w)) == 0 {
				return &engine.FieldError{Field: field, Offset: i, Msg: fmt.Sprintf("unknown column %q", w)}
			}
			i = j
		case c == '@':
			return &engine.FieldError{Field: field, Offset: i, Msg: "syntax error: unexpected '@'"}
		default:
			i++
		}
	}
	return nil
}

func newTestRegistry() *engine.Registry {
	r := engine.NewRegistry()
	r.MustRegister(engine.Spec{
		Name: "gen", Kind: engine.KindSource, Summary: "test generator",
		NewConfig: func() any { return &testGenConfig{Rows: 100} },
		Build: func(bc *engine.BuildContext, cfg any) (engine.Factory, error) {
			c := cfg.(*testGenConfig)
			var fields []arrow.Field
			for _, col := range c.Columns {
				fields = append(fields, arrow.Field{Name: col.Name, Type: testTypes[col.Type], Nullable: true})
			}
			if len(fields) == 0 {
				return nil, engine.Errf("columns", "needs at least one column")
			}
			return schemaFactory{arrow.NewSchema(fields, nil)}, nil
		},
	})
	r.MustRegister(engine.Spec{
		Name: "csv", Kind: engine.KindSource, Summary: "test csv",
		NewConfig: func() any { return &testCSVConfig{Delimiter: ","} },
		Build: func(bc *engine.BuildContext, cfg any) (engine.Factory, error) {
			return schemaFactory{arrow.NewSchema([]arrow.Field{
				{Name: "symbol", Type: arrow.BinaryTypes.String},
				{Name: "qty", Type: arrow.PrimitiveTypes.Int64},
				{Name: "price", Type: arrow.PrimitiveTypes.Float64},
			}, nil)}, nil
		},
	})
	r.MustRegister(engine.Spec{
		Name: "filter", Kind: engine.KindTransform, Parallel: true, MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &testFilterConfig{} },
		Build: func(bc *engine.BuildContext, cfg any) (engine.Factory, error) {
			if err := checkExpr("where", cfg.(*testFilterConfig).Where, bc.Inputs[0]); err != nil {
				return nil, err
			}
			return schemaFactory{bc.Inputs[0]}, nil
		},
	})
	r.MustRegister(engine.Spec{
		Name: "project", Kind: engine.KindTransform, Parallel: true, MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &testProjectConfig{} },
		Build: func(bc *engine.BuildContext, cfg any) (engine.Factory, error) {
			c := cfg.(*testProjectConfig)
			var fields []arrow.Field
			var errs engine.Errors
			for name, expr := range c.Columns {
				if err := checkExpr("columns."+name, expr, bc.Inputs[0]); err != nil {
					errs = append(errs, err)
				}
				fields = append(fields, arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64})
			}
			if len(errs) > 0 {
				return nil, errs
			}
			return schemaFactory{arrow.NewSchema(fields, nil)}, nil
		},
	})
	r.MustRegister(engine.Spec{
		Name: "sort", Kind: engine.KindTransform, MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &testSortConfig{} },
		Build: func(bc *engine.BuildContext, cfg any) (engine.Factory, error) {
			for i, b := range cfg.(*testSortConfig).By {
				if len(bc.Inputs[0].FieldIndices(b)) == 0 {
					return nil, engine.Errf(fmt.Sprintf("by.%d", i), "unknown column %q", b)
				}
			}
			return schemaFactory{bc.Inputs[0]}, nil
		},
	})
	r.MustRegister(engine.Spec{
		Name: "limit", Kind: engine.KindTransform, MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &testLimitConfig{} },
		Build: func(bc *engine.BuildContext, cfg any) (engine.Factory, error) {
			if c := cfg.(*testLimitConfig); c.Count < 0 {
				return nil, engine.Errf("count", "must be ≥ 0, got %d", c.Count)
			}
			return schemaFactory{bc.Inputs[0]}, nil
		},
	})
	r.MustRegister(engine.Spec{
		Name: "union", Kind: engine.KindTransform, Parallel: true, MinInputs: 1, MaxInputs: -1,
		NewConfig: func() any { return &struct{}{} },
		Build: func(bc *engine.BuildContext, cfg any) (engine.Factory, error) {
			return schemaFactory{bc.Inputs[0]}, nil
		},
	})
	r.MustRegister(engine.Spec{
		Name: "stdout", Kind: engine.KindSink, MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &testStdoutConfig{Format: "table"} },
		Build: func(bc *engine.BuildContext, cfg any) (engine.Factory, error) {
			return schemaFactory{}, nil
		},
	})
	r.MustRegister(engine.Spec{
		Name: "csv", Kind: engine.KindSink, MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &testFileSinkConfig{} },
		Build: func(bc *engine.BuildContext, cfg any) (engine.Factory, error) {
			return schemaFactory{}, nil
		},
	})
	return r
}
