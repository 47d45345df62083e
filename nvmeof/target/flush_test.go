package target_test

import (
	"sync/atomic"
	"testing"

	"github.com/zflowdev/zflow/nvmeof/initiator"
	"github.com/zflowdev/zflow/nvmeof/target"
)

// flushCounter is a real RAM namespace that counts its Flushes.
type flushCounter struct {
	*target.RAM
	n atomic.Int32
}

func (f *flushCounter) Flush() error {
	f.n.Add(1)
	return f.RAM.Flush()
}

func newFlushCounter(t *testing.T) *flushCounter {
	t.Helper()
	ram, err := target.NewRAM(1<<20, 12)
	if err != nil {
		t.Fatal(err)
	}
	return &flushCounter{RAM: ram}
}

// A Flush with NSID 0xFFFFFFFF flushes every namespace of the controller's
// own subsystem and no other's. The target here has only Subsystems (no
// top-level Namespaces): the flush used to walk the empty top-level list
// and flush nothing.
func TestFlushAllNamespacesOfItsSubsystem(t *testing.T) {
	a1, a2, b := newFlushCounter(t), newFlushCounter(t), newFlushCounter(t)
	const other = subNQN + ":other"
	tg, err := target.New(target.Config{Subsystems: []target.Subsystem{
		{NQN: subNQN, Namespaces: []target.Namespace{a1, a2}},
		{NQN: other, Namespaces: []target.Namespace{b}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	addr := listen(t, tg.Serve, func() { tg.Close() })
	ctrl := connect(t, addr, initiator.Config{})
	if err := ctrl.Flush(0, initiator.Namespace{ID: 0xFFFFFFFF}); err != nil {
		t.Fatal(err)
	}
	if a1.n.Load() != 1 || a2.n.Load() != 1 || b.n.Load() != 0 {
		t.Fatalf("flushes: %d and %d in the controller's subsystem (want 1 and 1), %d in the other (want 0)", a1.n.Load(), a2.n.Load(), b.n.Load())
	}
	other2 := connect(t, addr, initiator.Config{SubNQN: other})
	if err := other2.Flush(0, initiator.Namespace{ID: 0xFFFFFFFF}); err != nil {
		t.Fatal(err)
	}
	if a1.n.Load() != 1 || b.n.Load() != 1 {
		t.Fatalf("after the other subsystem's flush: %d, %d (want 1, 1)", a1.n.Load(), b.n.Load())
	}
}
