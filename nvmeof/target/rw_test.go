package target_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/zflowdev/zflow/nvmeof/initiator"
	"github.com/zflowdev/zflow/nvmeof/target"
)

// Byte ranges at any offset and length, against a copy kept in memory:
// partial blocks at the ends, transfers longer than MDTS spread over the
// queues.
func TestReadAtWriteAt(t *testing.T) {
	const size = 8 << 20
	addr, _ := serve(t, size, target.Config{})
	ctrl := connect(t, addr, initiator.Config{IOQueues: 4, QueueDepth: 8})
	ns, err := ctrl.Namespace(1)
	if err != nil {
		t.Fatal(err)
	}
	shadow := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	lens := []int{1, 100, 4095, 4096, 4097, 10000, 3 << 20}
	for i := range 40 {
		n := lens[i%len(lens)]
		off := rng.Int64N(size - int64(n))
		if i%5 == 0 {
			off &^= 4095
		}
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		if err := ctrl.WriteAt(ns, p, off); err != nil {
			t.Fatalf("write %d at %d: %v", n, off, err)
		}
		copy(shadow[off:], p)
		got := make([]byte, n)
		if err := ctrl.ReadAt(ns, got, off); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("read %d at %d: %v", n, off, err)
		}
	}
	all := make([]byte, size)
	if err := ctrl.ReadAt(ns, all, 0); err != nil || !bytes.Equal(all, shadow) {
		t.Fatalf("the whole namespace differs from the copy (%v)", err)
	}
	if err := ctrl.ReadAt(ns, make([]byte, 2), size-1); err == nil {
		t.Error("a read past the end succeeded")
	}
}
