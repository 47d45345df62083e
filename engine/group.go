package engine

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
)

// Group runs goroutines an operator starts itself (a parallel build, a
// background spill) the way the engine runs the operator: a panic raised
// only to report an error — an Allocate beyond a hard budget, which
// memory.Allocator cannot return — becomes that goroutine's error instead
// of killing the process; any other panic is logged with its stack and
// becomes an error too. The first error cancels the group's context; Wait
// returns it. An operator must Wait for its groups before it returns.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// Group returns a new group whose context is derived from ctx.
func (ic *InstanceContext) Group(ctx context.Context) *Group {
	g := &Group{log: slog.New(slog.DiscardHandler)}
	if ic != nil && ic.Logger != nil {
		g.log = ic.Logger
	}
	g.ctx, g.cancel = context.WithCancel(ctx)
	return g
}

// Context is cancelled when a goroutine of the group fails or the parent
// context is done.
func (g *Group) Context() context.Context { return g.ctx }

// Go runs f in a new goroutine of the group.
func (g *Group) Go(f func(ctx context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		var err error
		defer func() {
			if r := recover(); r != nil {
				perr, ok := r.(error)
				if !ok || !isReportedPanic(perr) {
					g.log.Error("operator goroutine panicked", "panic", r, "stack", string(debug.Stack()))
					perr = fmt.Errorf("panic: %v", r)
				}
				err = perr
			}
			if err != nil {
				g.once.Do(func() { g.err = err; g.cancel() })
			}
		}()
		err = f(g.ctx)
	}()
}

// Wait waits for every goroutine of the group and returns the first error.
func (g *Group) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}
