package expr

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
)

// Compiled is an expression checked against a schema, ready to evaluate on
// batches of that schema. It is immutable: any number of goroutines may
// call Eval and Select at once.
type Compiled struct {
	src    string
	schema *arrow.Schema
	root   node
	cols   []int
	ast    Expr // the tree root was checked from, for MayMatch
}

// Compile parses src and type-checks it against schema. Errors are a
// *SyntaxError (parsing stops at the first), a *TypeError, or an ErrorList
// of every *TypeError when the check found several, each with a byte
// offset into src (see Position, Errors, FieldError and FieldErrors).
func Compile(src string, schema *arrow.Schema) (*Compiled, error) {
	e, err := Parse(src)
	if err != nil {
		return nil, err
	}
	return CompileExpr(src, e, schema)
}

// CompileExpr type-checks a tree that Parse made from src (or a subtree of
// it, such as the argument of an aggregate) against schema. src is only used
// to quote sub-expressions in messages.
func CompileExpr(src string, e Expr, schema *arrow.Schema) (*Compiled, error) {
	if schema == nil {
		return nil, errors.New("expr: compile: nil schema")
	}
	c := &checker{src: src, schema: schema, cols: map[int]bool{}}
	root, err := c.check(e)
	if err == nil {
		err = c.result()
	}
	if err != nil {
		return nil, err
	}
	if classOf(root.dtype()) == clsInterval {
		return nil, typeErrf(offset(e), "%s is an interval, which cannot be a result: add it to a date or timestamp", c.text(e))
	}
	cols := make([]int, 0, len(c.cols))
	for i := range c.cols {
		cols = append(cols, i)
	}
	sort.Ints(cols)
	return &Compiled{src: src, schema: schema, root: root, cols: cols, ast: e}, nil
}

// Type returns the type of the arrays Eval returns. It is the column's own
// type for a bare column reference, otherwise one of int64, float64, utf8,
// bool, date32, a timestamp, the type a CAST names (int8…uint64, float32,
// decimal128) or null (an expression that is always NULL).
func (c *Compiled) Type() arrow.DataType { return c.root.dtype() }

// Columns returns the indices, ascending, of the schema columns the
// expression reads. The caller must not modify the slice.
func (c *Compiled) Columns() []int { return c.cols }

// ColumnNames returns the names of the schema columns the expression
// reads, in the order of Columns (what an operator's
// engine.ColumnUser.InputColumns names).
func (c *Compiled) ColumnNames() []string {
	out := make([]string, len(c.cols))
	for i, col := range c.cols {
		out[i] = c.schema.Field(col).Name
	}
	return out
}

// String returns the source the expression was compiled from.
func (c *Compiled) String() string { return c.src }

// Column returns the index of the column when the expression is a bare
// column reference, and ok = false otherwise.
func (c *Compiled) Column() (idx int, ok bool) {
	if n, isCol := c.root.(*colNode); isCol {
		return n.idx, true
	}
	return -1, false
}

// checkBatch verifies that rec has the columns the expression was compiled
// for, with the same types.
func (c *Compiled) checkBatch(rec arrow.RecordBatch) error {
	for _, i := range c.cols {
		want := c.schema.Field(i)
		if i >= int(rec.NumCols()) {
			return fmt.Errorf("expr: %q reads column %d (%s) but the batch has %d columns", c.src, i, want.Name, rec.NumCols())
		}
		if got := rec.Column(i).DataType(); !arrow.TypeEqual(got, want.Type) {
			return fmt.Errorf("expr: %q was compiled for column %d (%s) of type %s, the batch has %s",
				c.src, i, want.Name, typeName(want.Type), typeName(got))
		}
	}
	return nil
}

// Eval evaluates the expression over every row of rec and returns an array
// of rec.NumRows() values of type Type(); the caller owns it and must
// Release it. rec is borrowed. All memory comes from mem. A bare column
// reference returns that column itself, Retained (no copy). ctx cancels a
// long evaluation; run-time errors (integer overflow, a failed CAST) start
// with "expr: " and quote the failing sub-expression.
func (c *Compiled) Eval(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.Array, error) {
	if err := c.checkBatch(rec); err != nil {
		return nil, err
	}
	if n, ok := c.root.(*colNode); ok {
		arr := rec.Column(n.idx)
		arr.Retain()
		return arr, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if rec.NumRows() == 0 {
		// Some arrow-go kernels (is_in) leak their state on empty input.
		return array.MakeArrayOfNull(mem, c.Type(), 0), nil
	}
	ev := &evaluator{ctx: compute.WithAllocator(ctx, mem), mem: mem, rec: rec, n: int(rec.NumRows())}
	return ev.evalArray(c.root)
}

// Select evaluates a boolean expression as a filter predicate over rec (a
// NULL counts as false) and returns the rows where it is true:
//
//   - every row kept: out is rec itself, Retained (the same batch, no copy);
//   - no row kept: out is nil;
//   - otherwise out is a new batch of the kept rows (see select.go), with
//     memory from mem, and copied is its payload size (engine.BatchBytes),
//     the bytes to put on the copy ledger.
//
// A non-nil out belongs to the caller, who must Release it. rec is borrowed.
func (c *Compiled) Select(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (out arrow.RecordBatch, copied int64, err error) {
	if id := c.Type().ID(); id != arrow.BOOL && id != arrow.NULL {
		return nil, 0, fmt.Errorf("expr: select with %q: a predicate must be boolean, not %s", c.src, typeName(c.Type()))
	}
	n := rec.NumRows()
	if n == 0 {
		rec.Retain()
		return rec, 0, nil
	}
	mask, err := c.Eval(ctx, mem, rec)
	if err != nil {
		return nil, 0, err
	}
	defer mask.Release()
	b, ok := mask.(*array.Boolean)
	if !ok { // an always-NULL predicate
		return nil, 0, nil
	}
	kept := countTrue(b)
	switch kept {
	case n:
		rec.Retain()
		return rec, 0, nil
	case 0:
		return nil, 0, nil
	}
	idxBuf, idx := keptRows(mem, b, int(kept))
	defer idxBuf.Release()
	out, err = filterBatch(ctx, mem, rec, mask, idx)
	if err != nil {
		return nil, 0, fmt.Errorf("expr: filter by %q: %w", c.src, err)
	}
	return out, engine.BatchBytes(out), nil
}

// countTrue counts the rows of b that are true and not null.
func countTrue(b *array.Boolean) int64 {
	d := b.Data()
	n, off := b.Len(), d.Offset()
	vals := d.Buffers()[1].Bytes()
	if b.NullN() == 0 {
		return int64(bitutil.CountSetBits(vals, off, n))
	}
	valid := d.Buffers()[0].Bytes()
	if off%8 != 0 {
		cnt := 0
		for i := 0; i < n; i++ {
			j := off + i
			if bitutil.BitIsSet(vals, j) && bitutil.BitIsSet(valid, j) {
				cnt++
			}
		}
		return int64(cnt)
	}
	vals, valid = vals[off/8:], valid[off/8:]
	cnt, i := 0, 0
	for ; i+64 <= n; i += 64 {
		cnt += bits.OnesCount64(binary.LittleEndian.Uint64(vals[i/8:]) & binary.LittleEndian.Uint64(valid[i/8:]))
	}
	for ; i < n; i++ {
		if bitutil.BitIsSet(vals, i) && bitutil.BitIsSet(valid, i) {
			cnt++
		}
	}
	return int64(cnt)
}
