package operators

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// withSchema returns a batch with schema s over in's arrays (retained, never
// copied). The columns must match s in number and type.
func withSchema(s *arrow.Schema, in arrow.RecordBatch) (arrow.RecordBatch, error) {
	if int(in.NumCols()) != s.NumFields() {
		return nil, fmt.Errorf("operators: batch has %d columns, schema %d", in.NumCols(), s.NumFields())
	}
	for i, f := range s.Fields() {
		if !arrow.TypeEqual(f.Type, in.Column(i).DataType()) {
			return nil, fmt.Errorf("operators: column %q is %s, schema says %s", f.Name, in.Column(i).DataType(), f.Type)
		}
	}
	return array.NewRecordBatch(s, in.Columns(), in.NumRows()), nil
}
