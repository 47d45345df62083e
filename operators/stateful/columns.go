package stateful

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/zflowdev/zflow/engine"
)

// columnsByName resolves the column names of parameter param (by: [a, b])
// in schema in, each one a key column: the index of each, or one error per
// name that is unknown (with a suggestion), ambiguous, listed twice or of a
// type that cannot be a key. The errors are placed at param.N.
func columnsByName(in *arrow.Schema, param string, names []string) ([]int, []error) {
	var all []string
	for _, f := range in.Fields() {
		all = append(all, f.Name)
	}
	var idx []int
	var errs []error
	seen := map[int]bool{}
	for i, k := range names {
		p := fmt.Sprintf("%s.%d", param, i)
		found := in.FieldIndices(k)
		switch {
		case len(found) == 0:
			msg := fmt.Sprintf("no column %q in the input", k)
			if s := engine.Suggest(k, all); s != "" {
				msg += fmt.Sprintf(", did you mean %q?", s)
			}
			errs = append(errs, engine.Errf(p, "%s (columns: %s)", msg, strings.Join(all, ", ")))
			continue
		case len(found) > 1:
			errs = append(errs, engine.Errf(p, "the input has %d columns named %q", len(found), k))
			continue
		case seen[found[0]]:
			errs = append(errs, engine.Errf(p, "column %q is listed twice", k))
			continue
		}
		if err := KeyTypeOK(in.Field(found[0]).Type); err != nil {
			errs = append(errs, engine.Errf(p, "column %q: %v", k, err))
			continue
		}
		seen[found[0]] = true
		idx = append(idx, found[0])
	}
	return idx, errs
}

// keyTypes is the types of columns idx of in.
func keyTypes(in *arrow.Schema, idx []int) []arrow.DataType {
	t := make([]arrow.DataType, len(idx))
	for i, c := range idx {
		t[i] = in.Field(c).Type
	}
	return t
}

// pick is columns idx of rec.
func pick(rec arrow.RecordBatch, idx []int) []arrow.Array {
	cols := make([]arrow.Array, len(idx))
	for i, c := range idx {
		cols[i] = rec.Column(c)
	}
	return cols
}
