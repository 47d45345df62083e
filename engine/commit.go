package engine

import (
	"errors"
	"fmt"
)

// UndoableSink is an optional Sink interface: a sink whose Commit can be
// undone until the whole run has committed, so that a run with several
// sinks commits them all or none.
//
// For such a sink Commit is the first phase: it publishes the output under
// its final name but keeps what it replaced (the previous file, or the fact
// that there was none). Then exactly one of:
//
//   - Forget, once every sink of the run has committed: drops what Commit
//     kept; the commit is final. An error means the output is published
//     but something kept could not be dropped.
//   - Rollback, when a later sink's Commit failed: puts back what was under
//     the final name before Commit (or removes the output if nothing was).
//     An error means the sink could not restore it; the executor reports
//     it, naming the sink.
//
// A sink must also undo a Commit it never saw forgotten if its process
// dies in between (the file sinks do it in the next run: see
// internal/atomicfile.Recover).
type UndoableSink interface {
	Sink
	Rollback() error
	Forget() error
}

// commitSinks commits the sinks all or none. The undoable ones commit first,
// in plan order, then the others: a sink that cannot undo its Commit goes
// last, so that a failure of any other sink finds it not yet committed. If a
// Commit fails, the sinks committed before it are rolled back (the undoable
// ones; a plain sink committed before another plain sink failed stays
// committed, and the error says so), and the rest aborted. names[i] names
// sinks[i] in errors.
func commitSinks(sinks []Sink, names []string) error {
	order := make([]int, 0, len(sinks))
	for i, s := range sinks {
		if _, ok := s.(UndoableSink); ok {
			order = append(order, i)
		}
	}
	for i, s := range sinks {
		if _, ok := s.(UndoableSink); !ok {
			order = append(order, i)
		}
	}
	for n, i := range order {
		cerr := sinks[i].Commit()
		if cerr == nil {
			continue
		}
		errs := []error{fmt.Errorf("engine: commit sink %s: %w", names[i], cerr)}
		sinks[i].Abort()
		for _, j := range order[n+1:] {
			sinks[j].Abort()
		}
		for k := n - 1; k >= 0; k-- {
			j := order[k]
			u, ok := sinks[j].(UndoableSink)
			if !ok {
				errs = append(errs, fmt.Errorf("engine: sink %s was committed and cannot be rolled back", names[j]))
				continue
			}
			if err := u.Rollback(); err != nil {
				errs = append(errs, fmt.Errorf("engine: roll back sink %s: %w", names[j], err))
			}
		}
		return errors.Join(errs...)
	}
	var errs []error
	for _, i := range order {
		if u, ok := sinks[i].(UndoableSink); ok {
			if err := u.Forget(); err != nil {
				errs = append(errs, fmt.Errorf("engine: sink %s committed but could not forget its previous output: %w", names[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// sinkNames names x.sinks for errors: `"id"`, or `"id" instance k` for a
// node that runs several. It relies on Start appending the sink instances in
// plan order, node by node (TestCommitNamesSinks checks it).
func (x *Execution) sinkNames() []string {
	var names []string
	for _, n := range x.plan.nodes {
		if n.Spec == nil || n.Spec.Kind != KindSink {
			continue
		}
		for k := range n.Parallelism {
			if n.Parallelism > 1 {
				names = append(names, fmt.Sprintf("%q instance %d", n.ID, k))
			} else {
				names = append(names, fmt.Sprintf("%q", n.ID))
			}
		}
	}
	if len(names) != len(x.sinks) {
		names = names[:0]
		for i := range x.sinks {
			names = append(names, fmt.Sprintf("#%d", i))
		}
	}
	return names
}
