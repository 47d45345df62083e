package operators

import (
	"context"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators/expr"
)

// FilterConfig is the config of the filter transform.
type FilterConfig struct {
	Where string `zflow:"where" required:"true" doc:"boolean expression; rows where it is true pass (NULL counts as false)" example:"qty > 100 AND symbol IN ('AAPL', 'MSFT')"`
}

// FilterSpec declares filter. A batch whose every row passes is re-emitted
// itself (by reference); a batch with no passing row emits nothing; other
// batches are compacted by arrow's filter kernel, and those bytes go on the
// copy ledger as "filter compact".
func FilterSpec() engine.Spec {
	return engine.Spec{
		Name: "filter", Kind: engine.KindTransform, BatchLocal: true, Parallel: true, MinInputs: 1, MaxInputs: 1,
		Summary:   "keep the rows where an expression is true",
		Doc:       "The expression language (DuckDB's dialect): columns, literals (DATE '2024-06-02', TIMESTAMP '…', INTERVAL '90 minutes'), + - * / %, date and interval arithmetic, comparisons (a date or timestamp with a string constant: d >= '2024-01-01'), AND OR NOT (three-valued), IN, BETWEEN, IS [NOT] NULL, LIKE, CASE WHEN, CAST with DuckDB's types (TINYINT…UBIGINT, REAL, DOUBLE, DECIMAL(p,s), VARCHAR, BOOLEAN, DATE, TIMESTAMP[_S|_MS|_NS], TIMESTAMPTZ), ||, and functions (coalesce, abs, lower, upper, length, substr, replace, trim, concat, split_part, starts_with, contains, regexp_matches, regexp_replace, round, floor, ceil, sqrt, ln, pow, greatest, least, nullif, hash, date_part/extract, date_trunc, date_diff, make_date, strftime, strptime, epoch_ms, epoch, to_timestamp); see the expr package doc.",
		Example:   `{type: filter, inputs: [trades], where: "qty > 100 AND symbol IN ('AAPL', 'MSFT')"}`,
		NewConfig: func() any { return &FilterConfig{} },
		Build: func(bc *engine.BuildContext, c any) (engine.Factory, error) {
			cfg := c.(*FilterConfig)
			pred, err := expr.Compile(cfg.Where, bc.Inputs[0])
			if err != nil {
				return nil, expr.FieldErrors("where", err)
			}
			if id := pred.Type().ID(); id != arrow.BOOL && id != arrow.NULL {
				return nil, &engine.FieldError{Field: "where", Offset: 0,
					Msg: "where must be a boolean expression, but " + cfg.Where + " is " + pred.Type().String()}
			}
			return &filterFactory{pred: pred, schema: bc.Inputs[0]}, nil
		},
	}
}

func init() { engine.Register(FilterSpec()) }

type filterFactory struct {
	pred   *expr.Compiled
	schema *arrow.Schema
}

func (f *filterFactory) Schema() *arrow.Schema { return f.schema }
func (f *filterFactory) Describe() string      { return "where: " + f.pred.String() }

// Predicate offers the condition to the source the filter reads, when it
// holds something a source can skip data by (engine.PredicateProvider).
func (f *filterFactory) Predicate() (engine.Predicate, bool) { return f.pred, f.pred.Prunable() }

// InputColumns is what the filter reads: the columns its consumers read,
// which it passes on, and those of its condition (engine.ColumnUser).
func (f *filterFactory) InputColumns(_ int, out []string) []string {
	if out == nil {
		return nil
	}
	return append(slices.Clone(out), f.pred.ColumnNames()...)
}

func (f *filterFactory) New(ic *engine.InstanceContext) (any, error) {
	return &filter{pred: f.pred, mem: ic.Alloc, ledger: ic.Ledger}, nil
}

type filter struct {
	pred   *expr.Compiled
	mem    memory.Allocator
	ledger *engine.Ledger
}

func (f *filter) Process(ctx context.Context, _ int, in arrow.RecordBatch, out engine.Emitter) error {
	b, copied, err := f.pred.Select(ctx, f.mem, in)
	if err != nil || b == nil {
		return err
	}
	f.ledger.Copied("filter compact", copied)
	return out.Emit(b)
}
