package operators

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/zflowdev/zflow/engine"
)

// TakePredicate keeps the predicate of the filter reading this source, to
// skip the row groups whose column chunk statistics rule it out
// (engine.PredicateTaker); pushdown: false declines it.
func (f *parquetFactory) TakePredicate(p engine.Predicate) string {
	if !f.cfg.Pushdown {
		return ""
	}
	f.pred = p
	how := "row groups whose min/max statistics rule it out are skipped"
	// What the footers say now (the run decides again, on what it reads).
	out, total := 0, 0
	for _, foot := range f.footers {
		for rg := range foot.md.NumRowGroups() {
			md := foot.md.RowGroup(rg)
			total++
			if !p.MayMatch(func(col int) (engine.ColumnStats, bool) { return f.groupStats(foot.manifest, md, col) }) {
				out++
			}
		}
	}
	return fmt.Sprintf("%s (%d of %d by the footers now)", how, out, total)
}

// pruneGroups drops from groups the row groups of pf in which no row can
// satisfy the pushed-down predicate, counting what is read and skipped.
func (s *parquetSource) pruneGroups(pf *file.Reader, manifest *pqarrow.SchemaManifest, groups []int) []int {
	pred := s.f.pred
	if pred == nil {
		return groups
	}
	kept := groups[:0]
	for _, rg := range groups {
		md := pf.MetaData().RowGroup(rg)
		stats := func(col int) (engine.ColumnStats, bool) { return s.f.groupStats(manifest, md, col) }
		if pred.MayMatch(stats) {
			kept = append(kept, rg)
		}
	}
	s.ic.CountBlocks(int64(len(kept)), int64(len(groups)-len(kept)))
	return kept
}

// groupStats returns what row group md's statistics say of the source's
// output column col: its top-level field in the file, when that is a leaf
// of a type whose statistics order matches the expression's comparisons.
func (f *parquetFactory) groupStats(manifest *pqarrow.SchemaManifest, md *metadata.RowGroupMetaData, col int) (engine.ColumnStats, bool) {
	if col >= f.fileSchema.NumFields() {
		return engine.ColumnStats{}, false // a filename or partition column
	}
	field := col
	if f.fields != nil {
		field = f.fields[col]
	}
	if field >= len(manifest.Fields) || !manifest.Fields[field].IsLeaf() {
		return engine.ColumnStats{}, false
	}
	cc, err := md.ColumnChunk(manifest.Fields[field].ColIndex)
	if err != nil {
		return engine.ColumnStats{}, false
	}
	st, err := cc.Statistics()
	if err != nil || st == nil {
		return engine.ColumnStats{}, false
	}
	out := engine.ColumnStats{Rows: md.NumRows(), Nulls: -1}
	if st.HasNullCount() {
		out.Nulls = st.NullCount()
	}
	if st.HasMinMax() {
		out.Min, out.Max, out.HasMinMax = statBounds(f.fileSchema.Field(col).Type, st)
	}
	return out, true
}

// statBounds converts a column chunk's min and max to the values
// engine.ColumnStats holds for the Arrow type dt, or ok = false where they
// cannot be trusted for it: unsigned integers (stored signed), timestamps
// in another unit than the column's, booleans, and the upper bound of a
// float (Parquet leaves NaN out of the statistics, and a NaN compares above
// every number, so a float column's maximum is taken as +Inf).
func statBounds(dt arrow.DataType, st metadata.TypedStatistics) (lo, hi any, ok bool) {
	if it, isInt := st.Descr().LogicalType().(interface{ IsSigned() bool }); isInt && !it.IsSigned() {
		return nil, nil, false
	}
	switch st := st.(type) {
	case *metadata.Int32Statistics:
		switch dt.ID() {
		case arrow.INT8, arrow.INT16, arrow.INT32, arrow.DATE32:
			return int64(st.Min()), int64(st.Max()), true
		}
	case *metadata.Int64Statistics:
		switch dt.ID() {
		case arrow.INT64:
			return st.Min(), st.Max(), true
		case arrow.TIMESTAMP:
			ts, isTS := st.Descr().LogicalType().(interface{ TimeUnit() schema.TimeUnitType })
			if isTS && sameUnit(dt.(*arrow.TimestampType).Unit, ts.TimeUnit()) {
				return st.Min(), st.Max(), true
			}
		}
	case *metadata.Float32Statistics:
		if dt.ID() == arrow.FLOAT32 && !math.IsNaN(float64(st.Min())) {
			return float64(st.Min()), math.Inf(1), true
		}
	case *metadata.Float64Statistics:
		if dt.ID() == arrow.FLOAT64 && !math.IsNaN(st.Min()) {
			return st.Min(), math.Inf(1), true
		}
	case *metadata.ByteArrayStatistics:
		if dt.ID() == arrow.STRING || dt.ID() == arrow.LARGE_STRING {
			return string(st.Min()), string(st.Max()), true
		}
	}
	return nil, nil, false
}

func sameUnit(u arrow.TimeUnit, p schema.TimeUnitType) bool {
	switch p {
	case schema.TimeUnitMillis:
		return u == arrow.Millisecond
	case schema.TimeUnitMicros:
		return u == arrow.Microsecond
	case schema.TimeUnitNanos:
		return u == arrow.Nanosecond
	}
	return false
}
