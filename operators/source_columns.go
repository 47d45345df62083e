package operators

import (
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
)

// sourceColumns are a file source's output columns: those read from the
// files, then the extra ones (Hive partition keys, the file name), before
// and after a projection (engine.Projectable). The source reads and
// builds only the columns kept; which those are is decided at compile
// time, before the operators downstream are built on the narrower schema.
type sourceColumns struct {
	allFile  *arrow.Schema // every column of the files (after a columns: parameter)
	allExtra *extraCols

	keep       []int         // indices into allFile of the file columns read; nil: all
	fileSchema *arrow.Schema // the file columns read
	extra      *extraCols    // the extra columns kept
	schema     *arrow.Schema // fileSchema, then extra
}

// setColumns sets every column: file's, then extra's.
func (c *sourceColumns) setColumns(file *arrow.Schema, extra *extraCols) {
	c.allFile, c.allExtra = file, extra
	c.project(nil)
}

// project keeps the columns named (nil: all of them), in their order.
func (c *sourceColumns) project(names []string) {
	if names == nil {
		c.keep, c.fileSchema, c.extra = nil, c.allFile, c.allExtra
		c.schema = c.extra.schema(c.fileSchema)
		return
	}
	c.keep = []int{}
	var fields []arrow.Field
	for i, f := range c.allFile.Fields() {
		if slices.Contains(names, f.Name) {
			c.keep = append(c.keep, i)
			fields = append(fields, f)
		}
	}
	md := c.allFile.Metadata()
	c.fileSchema = arrow.NewSchema(fields, &md)
	c.extra = c.allExtra.project(names)
	c.schema = c.extra.schema(c.fileSchema)
}

// kept reports whether file column i (of allFile) is read, and where it
// goes among fileSchema's.
func (c *sourceColumns) kept(i int) (int, bool) {
	if c.keep == nil {
		return i, true
	}
	k, found := slices.BinarySearch(c.keep, i)
	return k, found
}

// takeProjection is what the text and Arrow sources' TakeProjection
// share: pushdown false declines; how says what is saved.
func (c *sourceColumns) takeProjection(pushdown bool, cols []string, how string) string {
	if !pushdown && cols != nil {
		return ""
	}
	c.project(cols)
	return how
}

// project returns the extra columns named, with their values.
func (x *extraCols) project(names []string) *extraCols {
	y := &extraCols{values: make([][]*string, len(x.values))}
	for c, f := range x.fields {
		if !slices.Contains(names, f.Name) {
			continue
		}
		y.fields = append(y.fields, f)
		for i := range x.values {
			y.values[i] = append(y.values[i], x.values[i][c])
		}
	}
	return y
}
