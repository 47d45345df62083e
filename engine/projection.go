package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// ColumnUser is a factory (a transform, or a sink) that reads only some of
// the columns of its inputs. Compile asks it, consumers first, which input
// columns it needs to make the output columns its own consumers need, and
// hands a source the union of what its consumers need (Projectable).
//
// InputColumns returns the names of the columns of input port that the
// operator reads to produce the output columns named in out; out is nil
// when every output column is needed (a sink's, for one). A nil result
// means every column of that input; an empty one, none (the operator
// counts rows, say). Names of columns the input does not have are
// ignored. A factory that does not implement ColumnUser reads every column
// of every input.
//
// The rule an implementation follows: name every column the operator
// reads, for any purpose (a filter's condition, a join key, an aggregate's
// argument, a sort key), every column its Build needs to find, and every
// column it passes through that is in out. After the sources narrow, the
// operator is built again on the narrower input schemas (with
// BuildContext.Narrowed set), so column indices it compiled are
// recomputed; a name it checks only to leave the column out (a drop list)
// must not fail that second build.
type ColumnUser interface {
	InputColumns(port int, out []string) []string
}

// Projectable is a source factory that can read only some of its columns.
// TakeProjection is given the names of the columns its consumers read, a
// non-empty subset of its Schema's names, in that order. It returns how
// it reads less (for the plan: "the other column chunks are not read"),
// and from then on its Schema is exactly those columns, in that order, and
// so are its batches; or it returns "" and changes nothing. It is called
// again with nil to restore every column, when the narrower plan cannot be
// built (a union by position of a narrowed and a full input, say).
type Projectable interface {
	TakeProjection(cols []string) string
}

// DictionarySource is a source factory that can read some of its columns
// as Arrow dictionaries (a Parquet file's dictionary-encoded strings)
// rather than expanding every value. DictionaryColumns lists those it
// could; TakeDictionaries reads cols that way from then on (its Schema
// changes to dictionary types for them) and says how, or declines with
// "". It is called with nil to restore the values.
type DictionarySource interface {
	DictionaryColumns() []string
	TakeDictionaries(cols []string) string
}

// DictionaryUser is a consumer factory that gives the same output — the
// same schema, the same values — when column col of its input port
// arrives as a dictionary of its values, and does its work faster so (an
// aggregate grouping by col finds groups per dictionary entry).
type DictionaryUser interface {
	DictionaryOK(port int, col string) bool
}

// built is a node's factory and output schema, kept to restore them when
// a pushdown's rebuild fails.
type built struct {
	f Factory
	s *arrow.Schema
}

// pushDictionaries lets a DictionarySource read as dictionaries the
// columns that every consumer of it takes as well that way, builds those
// consumers again on the new schema, and checks that their output schemas
// did not change; if a build fails or a schema changes, that source is
// restored with its consumers' earlier factories. build is Compile's step.
func (p *Plan) pushDictionaries(order []*planNode, build func(*planNode) error) {
	for _, n := range order {
		ds, ok := n.Factory.(DictionarySource)
		if n.Spec.Kind != KindSource || !ok || len(n.Consumers) == 0 {
			continue
		}
		var cols []string
		for _, col := range ds.DictionaryColumns() {
			all := true
			for _, c := range n.Consumers {
				j := slices.Index(c.Inputs, n)
				du, ok := c.Factory.(DictionaryUser)
				if !ok || c.inPorts[j] > 0 || !du.DictionaryOK(j, col) {
					all = false
					break
				}
			}
			if all {
				cols = append(cols, col)
			}
		}
		if len(cols) == 0 {
			continue
		}
		how := ds.TakeDictionaries(cols)
		if how == "" {
			continue
		}
		before := n.Schema
		n.Schema = n.Factory.Schema()
		prev := map[*planNode]built{}
		ok = true
		for _, c := range n.Consumers {
			if _, done := prev[c]; done {
				continue
			}
			prev[c] = built{c.Factory, c.Schema}
			if err := build(c); err != nil || !c.Schema.Equal(prev[c].s) {
				ok = false
				break
			}
		}
		if !ok {
			ds.TakeDictionaries(nil)
			n.Schema = before
			for c, s := range prev {
				c.Factory, c.Schema = s.f, s.s
			}
			continue
		}
		n.dictionary = fmt.Sprintf("%s: %s", strings.Join(cols, ", "), how)
	}
}

// neededColumns computes, consumers first, the columns of each node's
// output that its consumers read: nil for all of them.
func neededColumns(order []*planNode) map[*planNode][]string {
	need := map[*planNode][]string{}
	for i := len(order) - 1; i >= 0; i-- {
		n := order[i]
		if n.Spec.Kind == KindSink || n.Schema == nil {
			continue
		}
		var used []string
		all := false
		for _, c := range n.Consumers {
			cu, ok := c.Factory.(ColumnUser)
			j := slices.Index(c.Inputs, n)
			if !ok || c.inPorts[j] > 0 { // another port: its own schema
				all = true
				break
			}
			got := cu.InputColumns(j, need[c])
			if got == nil {
				all = true
				break
			}
			used = append(used, got...)
		}
		if all {
			continue // nil: every column
		}
		// In schema order, each once, only the schema's own names.
		cols := []string{}
		for _, f := range n.Schema.Fields() {
			if slices.Contains(used, f.Name) && !slices.Contains(cols, f.Name) {
				cols = append(cols, f.Name)
			}
		}
		need[n] = cols
	}
	return need
}

// pushProjections narrows the sources whose consumers read fewer columns
// than they offer (Projectable), then builds again, on the narrower
// schemas, every node an input of which changed. If one of those builds
// fails, every source is restored and the earlier factories kept: the plan
// stays as it was before, and its info says why. build builds one node
// (Compile's own step).
func (p *Plan) pushProjections(order []*planNode, build func(*planNode) error) {
	need := neededColumns(order)
	saved := map[*planNode]built{}
	changed := map[*planNode]bool{}
	for _, n := range order {
		pr, ok := n.Factory.(Projectable)
		cols := need[n]
		if n.Spec.Kind != KindSource || !ok || cols == nil || len(cols) == n.Schema.NumFields() {
			continue
		}
		if len(cols) == 0 { // the consumers count rows: a source still needs a column to have rows
			cols = []string{n.Schema.Field(0).Name}
		}
		total := n.Schema.NumFields()
		how := pr.TakeProjection(cols)
		if how == "" {
			continue
		}
		if got := n.Factory.Schema(); got == nil || !slices.Equal(FieldNames(got), cols) {
			pr.TakeProjection(nil) // a bug in the source: keep it whole
			n.projection = fmt.Sprintf("not narrowed: it offered %v for %v (a bug in the source)", FieldNames(got), cols)
			continue
		}
		saved[n] = built{n.Factory, n.Schema}
		n.Schema = n.Factory.Schema()
		n.projection = fmt.Sprintf("%d of %d (projection: %s): %s", len(cols), total, strings.Join(cols, ", "), how)
		changed[n] = true
	}
	if len(changed) == 0 {
		return
	}
	for _, n := range order {
		if n.Spec.Kind == KindSource || !slices.ContainsFunc(n.Inputs, func(in *planNode) bool { return changed[in] }) {
			continue
		}
		saved[n] = built{n.Factory, n.Schema}
		if err := build(n); err != nil {
			for m, b := range saved {
				if pr, ok := m.Factory.(Projectable); ok && m.Spec.Kind == KindSource {
					pr.TakeProjection(nil)
				}
				m.Factory, m.Schema, m.projection = b.f, b.s, ""
			}
			p.Info["projection"] = fmt.Sprintf("off: %s could not be built on the narrower columns (%v); every source reads all its columns", n.ID, err)
			return
		}
		if n.Schema != nil && !n.Schema.Equal(saved[n].s) {
			changed[n] = true
		}
	}
}

// FieldNames are the names of s's fields, in order (nil for a nil s).
func FieldNames(s *arrow.Schema) []string {
	if s == nil {
		return nil
	}
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name
	}
	return out
}
