//go:build linux

package rdma

import (
	"context"
	"sync"
)

// CQ is a completion queue: the outcomes of a queue pair's signaled work
// requests, its failed ones and its receives, drained in batches.
type CQ struct {
	mu   sync.Mutex
	q    []Completion
	wake chan struct{} // a token when q went from empty to not
}

// NewCQ returns an empty completion queue.
func NewCQ() *CQ { return &CQ{wake: make(chan struct{}, 1)} }

func (cq *CQ) push(cs ...Completion) {
	if len(cs) == 0 {
		return
	}
	cq.mu.Lock()
	cq.q = append(cq.q, cs...)
	cq.mu.Unlock()
	select {
	case cq.wake <- struct{}{}:
	default:
	}
}

// TryPoll moves up to len(out) completions into out without waiting.
func (cq *CQ) TryPoll(out []Completion) int {
	cq.mu.Lock()
	n := copy(out, cq.q)
	cq.q = cq.q[:copy(cq.q, cq.q[n:])]
	cq.mu.Unlock()
	return n
}

// Poll waits for at least one completion (or ctx's end) and moves up to
// len(out) of them into out.
func (cq *CQ) Poll(ctx context.Context, out []Completion) (int, error) {
	for {
		if n := cq.TryPoll(out); n > 0 {
			return n, nil
		}
		select {
		case <-cq.wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Ready is a channel that receives a token when completions arrive, for a
// caller that waits on other things as well (then TryPoll).
func (cq *CQ) Ready() <-chan struct{} { return cq.wake }
