package engine

import "fmt"

// ColumnStats are what a source knows of one of its output columns over a
// block of rows (a Parquet row group, say) before it reads them.
type ColumnStats struct {
	Rows  int64 // rows in the block
	Nulls int64 // null values among them; -1 when unknown
	// Min and Max bound the non-null values when HasMinMax: int64 for
	// signed integers, date32 (days) and timestamps (in the column's
	// unit), uint64 for unsigned integers, float64 for floats, string for
	// strings. A source may pass wider bounds than the data's (a truncated
	// string minimum), never narrower ones.
	HasMinMax bool
	Min, Max  any
}

// Predicate is a filter's condition as a source may use it: to skip blocks
// of rows that cannot satisfy it, before reading them. The filter still
// runs on every row the source emits, so a source that skips nothing, or
// only some of what it could, is still correct.
type Predicate interface {
	// String is the condition as the pipeline wrote it.
	String() string
	// MayMatch reports whether a row of a block may satisfy the condition,
	// given stats for the columns the source knows (by index in its output
	// schema; stats returns false for the others). It answers false only
	// when none can.
	MayMatch(stats func(col int) (ColumnStats, bool)) bool
}

// PredicateProvider is a transform factory whose output is the rows of its
// one input that satisfy a predicate (a filter). Predicate returns false
// when no source could use the condition (it has nothing MayMatch follows).
type PredicateProvider interface {
	Predicate() (Predicate, bool)
}

// PredicateTaker is a source factory that can skip blocks of its data by a
// predicate over its output columns. Compile hands it the predicate of the
// filter that is its only consumer; TakePredicate returns how the source
// will use it, for the plan ("row groups whose statistics rule it out are
// skipped"), or "" to decline. The source counts what it read and skipped
// with InstanceContext.CountBlocks.
type PredicateTaker interface {
	TakePredicate(p Predicate) string
}

// pushPredicates gives each filter's predicate to the source it reads
// from, where that source can take it and feeds nothing else (skipping
// blocks would take rows from the other consumers).
func pushPredicates(nodes []*planNode) {
	for _, n := range nodes {
		pp, ok := n.Factory.(PredicateProvider)
		if !ok || len(n.Inputs) != 1 {
			continue
		}
		src := n.Inputs[0]
		pt, ok := src.Factory.(PredicateTaker)
		if !ok || src.Spec.Kind != KindSource || len(src.Consumers) != 1 {
			continue
		}
		pred, ok := pp.Predicate()
		if !ok {
			continue
		}
		if how := pt.TakePredicate(pred); how != "" {
			src.pushdown = fmt.Sprintf("%s (from %s): %s", pred.String(), n.ID, how)
		}
	}
}

// CountBlocks adds to the blocks of data (Parquet row groups, say) the
// instance read and those it skipped by a pushed-down predicate, shown in
// the summary (OpStats.BlocksRead, BlocksSkipped).
func (ic *InstanceContext) CountBlocks(read, skipped int64) {
	if ic != nil && ic.blocks != nil {
		ic.blocks[0].Add(read)
		ic.blocks[1].Add(skipped)
	}
}
