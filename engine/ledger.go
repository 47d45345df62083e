package engine

import (
	"sync"
	"sync/atomic"
)

// Ledger is an operator instance's page of the copy ledger. Every byte an
// operator emits is one of three things, and the summary has a column for
// each:
//
//   - by reference: the bytes of a buffer that already existed and is
//     passed on without a copy. The engine finds the ones shared with the
//     batch being processed by itself (reason "input"); an operator that
//     passes on memory from anywhere else — batches it held across calls
//     (a join's build side, a sort), batches it emits from Finish, a
//     mapped file, a shared-memory segment — reports them with Referenced,
//     with a reason.
//   - copied: payload bytes copied from a buffer that already existed
//     (a gather, an encode, a copy into shared memory), reported with
//     Copied, with a reason.
//   - created: the rest (bytes decoded, parsed or computed).
//
// Report each byte once: Referenced only for buffers that do not come from
// the batch being processed (the engine counts those).
//
// Safe for concurrent use (an operator's own goroutines may report), and
// cheap: an atomic add per call, no lock once a reason has been seen. The
// engine folds the instances' pages at the end of the run.
type Ledger struct {
	copied, ref atomic.Int64
	copies      reasonTable
	refs        reasonTable
}

// NewLedger returns a free-standing ledger, for using an operator outside a
// run (tests, benchmarks). Read it with Copies and References.
func NewLedger() *Ledger { return &Ledger{} }

// Copied records n payload bytes copied for reason.
func (l *Ledger) Copied(reason string, n int64) {
	if l == nil || n == 0 {
		return
	}
	l.copied.Add(n)
	l.copies.add(reason, n)
}

// Referenced records n bytes passed on by reference for reason, from
// somewhere other than the batch being processed (see Ledger).
func (l *Ledger) Referenced(reason string, n int64) {
	if l == nil || n == 0 {
		return
	}
	l.ref.Add(n)
	l.refs.add(reason, n)
}

// Copies returns the bytes reported as copied, by reason.
func (l *Ledger) Copies() map[string]int64 {
	if l == nil {
		return nil
	}
	return l.copies.snapshot(nil)
}

// References returns the bytes reported as passed by reference, by reason.
func (l *Ledger) References() map[string]int64 {
	if l == nil {
		return nil
	}
	return l.refs.snapshot(nil)
}

// reasonTable counts bytes by reason. The table is copied on write (a new
// reason is rare: reasons are a few constant strings per operator) and read
// without a lock, so counting a known reason is a scan and an atomic add.
type reasonTable struct {
	mu  sync.Mutex
	tab atomic.Pointer[[]*reasonCount]
}

type reasonCount struct {
	reason string
	n      atomic.Int64
}

func (t *reasonTable) add(reason string, n int64) {
	if p := t.tab.Load(); p != nil {
		for _, rc := range *p {
			if rc.reason == reason {
				rc.n.Add(n)
				return
			}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var old []*reasonCount
	if p := t.tab.Load(); p != nil {
		old = *p
		for _, rc := range old {
			if rc.reason == reason {
				rc.n.Add(n)
				return
			}
		}
	}
	rc := &reasonCount{reason: reason}
	rc.n.Store(n)
	tab := append(append(make([]*reasonCount, 0, len(old)+1), old...), rc)
	t.tab.Store(&tab)
}

// snapshot adds the table's counts into into (made if nil) and returns it;
// nil when there is nothing to add.
func (t *reasonTable) snapshot(into map[string]int64) map[string]int64 {
	p := t.tab.Load()
	if p == nil {
		return into
	}
	for _, rc := range *p {
		if into == nil {
			into = map[string]int64{}
		}
		into[rc.reason] += rc.n.Load()
	}
	return into
}
