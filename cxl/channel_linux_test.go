package cxl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/buffers"
)

// chanSetup makes a segment with a cxl pool (the producer's arena) and
// returns the pool and the path.
func chanSetup(t *testing.T) (*Pool, string) {
	t.Helper()
	path := filepath.Join(shmDir(t), "seg")
	p, err := NewPool(buffers.PoolConfig{Path: path, Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p, path
}

// publish allocates a descriptor with payload in the pool and publishes
// it; its release frees it.
func publish(t *testing.T, ctx context.Context, pool *Pool, prod *Producer, payload string, released *int) uint64 {
	t.Helper()
	d := pool.Allocate(DescHeaderBytes + len(payload))
	copy(d[DescHeaderBytes:], payload)
	seq, err := prod.Publish(ctx, d, func() {
		*released++
		pool.Free(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func attach(t *testing.T, path string, role Role) (*Segment, *Participant) {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Attach(role, role.String())
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

// TestChannelBroadcast: two consumers, each on its own mapping, get every
// batch in order; each batch is released once both acked it, in any
// order they release.
func TestChannelBroadcast(t *testing.T) {
	defer goleak.VerifyNone(t)
	pool, path := chanSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pp, err := pool.Segment().Attach(RoleProducer, "p")
	if err != nil {
		t.Fatal(err)
	}
	prod, err := pool.Segment().Produce(ctx, pp, "trades", ChannelOptions{Consumers: 2, Capacity: 8})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for c := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, part := attach(t, path, RoleConsumer)
			defer s.Close()
			cons, err := s.Consume(ctx, part, "trades", ChannelOptions{Wait: 10 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			var held []uint64
			for i := uint64(0); ; i++ {
				d, err := cons.Next(ctx)
				if err == io.EOF {
					if i != n {
						errs <- fmt.Errorf("consumer %d: end after %d batches", c, i)
					}
					break
				}
				if err != nil {
					errs <- err
					return
				}
				if d.Seq != i || string(d.Payload) != fmt.Sprintf("batch %d", i) {
					errs <- fmt.Errorf("consumer %d: batch %d: seq %d payload %q", c, i, d.Seq, d.Payload)
					return
				}
				// release out of order: hold three, release newest first
				held = append(held, d.Seq)
				if len(held) == 3 || i == n-1 {
					for j := len(held) - 1; j >= 0; j-- {
						if err := cons.Release(held[j]); err != nil {
							errs <- err
							return
						}
					}
					held = held[:0]
				}
			}
		}()
	}
	released := 0
	for i := range n {
		if seq := publish(t, ctx, pool, prod, fmt.Sprintf("batch %d", i), &released); seq != uint64(i) {
			t.Fatalf("published as %d, want %d", seq, i)
		}
	}
	if err := prod.End(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if released != n || prod.Pending() != 0 {
		t.Errorf("%d of %d batches released, %d pending", released, n, prod.Pending())
	}
}

// TestChannelTakeover: a consumer that goes away is replaced by another
// process, which gets again every batch its predecessor had not acked and
// nothing it had; a producer that goes away is replaced and continues the
// sequence.
func TestChannelTakeover(t *testing.T) {
	pool, path := chanSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Producers publish descriptors from the pool's mapping, so they use
	// the pool's segment handle (a producer's arena and its channel are
	// one mapping).
	seg := pool.Segment()
	pp, err := seg.Attach(RoleProducer, "first")
	if err != nil {
		t.Fatal(err)
	}
	prod, err := seg.Produce(ctx, pp, "c", ChannelOptions{Capacity: 16})
	if err != nil {
		t.Fatal(err)
	}
	released := 0
	for i := range 10 {
		publish(t, ctx, pool, prod, fmt.Sprint(i), &released)
	}
	c1s, c1p := attach(t, path, RoleConsumer)
	c1, err := c1s.Consume(ctx, c1p, "c", ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		d, err := c1.Next(ctx)
		if err != nil || d.Seq != uint64(i) {
			t.Fatalf("first consumer, batch %d: %+v %v", i, d, err)
		}
		if i < 4 {
			c1.Release(d.Seq)
		}
	}
	// Another live consumer cannot join a one-consumer channel.
	c2s, c2p := attach(t, path, RoleConsumer)
	defer c2s.Close()
	if _, err := c2s.Consume(ctx, c2p, "c", ChannelOptions{}); err == nil || !strings.Contains(err.Error(), "held by live processes") {
		t.Fatalf("second consumer while the first lives: %v", err)
	}
	c1s.Close() // the first consumer goes away (its locks go, as at death)
	c2, err := c2s.Consume(ctx, c2p, "c", ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c2.Next(ctx)
	if err != nil || d.Seq != 4 || string(d.Payload) != "4" {
		t.Fatalf("after takeover: %+v %v, want batch 4 again", d, err)
	}
	c2.Release(4)
	// The producer goes away; another takes its place and continues.
	prod.Reap()
	if released != 5 {
		t.Errorf("%d batches released after acks of 0..4, want 5", released)
	}
	pp.Detach()
	pp3, err := seg.Attach(RoleProducer, "third")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seg.Produce(ctx, pp3, "c", ChannelOptions{Consumers: 2}); err == nil || !strings.Contains(err.Error(), "made for 1 consumers") {
		t.Errorf("takeover with another consumer count: %v", err)
	}
	prod3, err := seg.Produce(ctx, pp3, "c", ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if prod3.Next() != 10 {
		t.Errorf("the new producer continues at %d, want 10", prod3.Next())
	}
	s4, pp4 := attach(t, path, RoleProducer)
	defer s4.Close()
	if _, err := s4.Produce(ctx, pp4, "c", ChannelOptions{}); err == nil || !strings.Contains(err.Error(), "live producer") {
		t.Errorf("a second live producer: %v", err)
	}
	released3 := 0
	publish(t, ctx, pool, prod3, "10", &released3)
	for want := uint64(5); want <= 10; want++ {
		d, err := c2.Next(ctx)
		if err != nil || d.Seq != want {
			t.Fatalf("batch %d: %+v %v", want, d, err)
		}
		c2.Release(d.Seq)
	}
	if err := prod3.End(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Next(ctx); err != io.EOF {
		t.Errorf("after the end: %v", err)
	}
	// The first producer's batches 5..9 were allocated in the pool, which
	// this test still holds: free them as their releases would have.
	prod.Abandon()
}

func TestChannelCorruptDescriptor(t *testing.T) {
	pool, path := chanSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seg := pool.Segment()
	pp, err := seg.Attach(RoleProducer, "p")
	if err != nil {
		t.Fatal(err)
	}
	prod, err := seg.Produce(ctx, pp, "c", ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs, cp := attach(t, path, RoleConsumer)
	defer cs.Close()
	cons, err := cs.Consume(ctx, cp, "c", ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(d []byte)
		want string
	}{
		{"payload", func(d []byte) { d[DescHeaderBytes] ^= 1 }, "payload checksum"},
		{"magic", func(d []byte) { d[0] = 'X' }, "magic"},
		{"length", func(d []byte) { binary.LittleEndian.PutUint32(d[4:], 999) }, "the ring says"},
		{"sequence", func(d []byte) { binary.LittleEndian.PutUint64(d[8:], 77) }, "sequence 77"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			released := 0
			d := pool.Allocate(DescHeaderBytes + 16)
			seq, err := prod.Publish(ctx, d, func() { released++; pool.Free(d) })
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(d)
			_, err = cons.Next(ctx)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "offset") {
				t.Fatalf("corrupt descriptor: %v, want %q", err, tc.want)
			}
			// the consumer did not advance past it: a retry sees it again
			cons.ring.mine--
			cons.ring.Pop(ctx, nil)
			cons.next = seq + 1
			cons.Release(seq)
			prod.Reap()
		})
	}
	if err := prod.End(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDeadProducerRetired: a producer that dies with batches not acked
// leaves its extents retired, not freed, until the channel is drained.
func TestDeadProducerRetired(t *testing.T) {
	path := filepath.Join(shmDir(t), "seg")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ps, err := Open(path, Options{Create: true, Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	pp, _ := ps.Attach(RoleProducer, "p")
	prod, err := ps.Produce(ctx, pp, "c", ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x, err := ps.claimExtents(uint32(pp.slot+1), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	desc := ps.extentBytes(x, 1)[:64]
	if _, err := prod.Publish(ctx, desc, nil); err != nil {
		t.Fatal(err)
	}
	// The producer's process dies: simulate by dropping its locks without
	// a clean detach.
	unlock(ps.fd, lockSlot0+int64(pp.slot))
	// Attaching takes the dead producer's slot (its lock is free), and
	// reclaims it first.
	cs, cp := attach(t, path, RoleConsumer)
	defer cs.Close()
	if cp.slot != pp.slot {
		t.Fatalf("the consumer took slot %d, not the dead producer's %d", cp.slot, pp.slot)
	}
	if o := cs.u32(cs.extentEntry(x) + extOwner).Load(); o != retiredOwner {
		t.Fatalf("the dead producer's extent has owner %#x, want retired", o)
	}
	cons, err := cs.Consume(ctx, cp, "c", ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := cons.Next(ctx)
	if err != nil || d.Seq != 0 {
		t.Fatalf("the dead producer's batch: %+v %v", d, err)
	}
	cons.Release(0)
	cs.Reclaim() // sweeps
	if o := cs.u32(cs.extentEntry(x) + extOwner).Load(); o != 0 {
		t.Errorf("after the channel drained the extent has owner %#x, want free", o)
	}
	ps.unmap()
	ps.f.Close()
}
