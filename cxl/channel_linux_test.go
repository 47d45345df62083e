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
	seq, err := prod.Publish(ctx, d, prod.Next()+1, func() {
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
	_, prod := produceAs(t, ctx, pool.Segment(), "p", "trades", ChannelOptions{Consumers: 2, Capacity: 8})
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
	pp, prod := produceAs(t, ctx, seg, "first", "c", ChannelOptions{Capacity: 16})
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
	endStream(t, ctx, prod3, c2)
	// The first producer's batches 5..9 were allocated in the pool, which
	// this test still holds: free them as their releases would have.
	prod.Abandon()
}

func TestChannelCorruptDescriptor(t *testing.T) {
	pool, path := chanSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seg := pool.Segment()
	_, prod := produceAs(t, ctx, seg, "p", "c", ChannelOptions{})
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
			seq, err := prod.Publish(ctx, d, prod.Next()+1, func() { released++; pool.Free(d) })
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
	endStream(t, ctx, prod, cons)
}

// endStream ends prod's stream while cons reads up to its end: End
// returns once every consumer acked the end marker.
func endStream(t *testing.T, ctx context.Context, prod *Producer, cons ...*Consumer) {
	t.Helper()
	ended := make(chan error, 1)
	go func() { ended <- prod.End(ctx) }()
	for _, c := range cons {
		if _, err := c.Next(ctx); err != io.EOF {
			t.Errorf("after the end: %v, want io.EOF", err)
		}
	}
	if err := <-ended; err != nil {
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
	if _, err := prod.Publish(ctx, desc, 0, nil); err != nil {
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

// TestChannelResume: a producer that takes over an unfinished stream
// first completes the batch its predecessor left on some rings only, then
// learns the predecessor's last mark; one that takes over a delivered and
// closed stream starts a new one, and with Replay one whose producer died
// after delivery but before closing continues it with nothing to add.
func TestChannelResume(t *testing.T) {
	pool, path := chanSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seg := pool.Segment()
	pa, a := produceAs(t, ctx, seg, "a", "c", ChannelOptions{Consumers: 2, Capacity: 16})
	if a.Resume() != nil {
		t.Fatalf("a new channel resumes %+v", a.Resume())
	}
	var releasedA int
	for i := range 5 {
		d := pool.Allocate(DescHeaderBytes + 8)
		copy(d[DescHeaderBytes:], fmt.Sprint(i))
		if _, err := a.Publish(ctx, d, uint64(i+1)*100, func() { releasedA++; pool.Free(d) }); err != nil {
			t.Fatal(err)
		}
	}
	// a dies while publishing batch 5: it reached consumer 0's ring only.
	d5 := pool.Allocate(DescHeaderBytes + 8)
	copy(d5[DescHeaderBytes:], "5")
	sealDesc(d5, 5)
	off, _ := seg.Contains(d5)
	if _, err := a.rings[0].PushEntry(ctx, Entry{A: uint64(off), B: uint64(len(d5)), C: 600}, nil); err != nil {
		t.Fatal(err)
	}
	pa.Detach()
	pb, b := produceAs(t, ctx, seg, "b", "c", ChannelOptions{Consumers: 2, Capacity: 16})
	if r := b.Resume(); r == nil || *r != (Resume{Batches: 6, Mark: 600}) || b.Next() != 6 {
		t.Fatalf("b resumes %+v at %d, want 6 batches, mark 600, at 6", r, b.Next())
	}
	var cons []*Consumer
	for k := range 2 {
		s, p := attach(t, path, RoleConsumer)
		defer s.Close()
		c, err := s.Consume(ctx, p, "c", ChannelOptions{Hold: k == 0})
		if err != nil {
			t.Fatal(err)
		}
		cons = append(cons, c)
		for i := range 6 {
			d, err := c.Next(ctx)
			if err != nil || d.Seq != uint64(i) || string(d.Payload[:1]) != fmt.Sprint(i) {
				t.Fatalf("consumer %d, batch %d: %+v %v", k, i, d, err)
			}
			c.Release(d.Seq)
		}
	}
	var releasedB int
	d := pool.Allocate(DescHeaderBytes + 8)
	if _, err := b.Publish(ctx, d, 700, func() { releasedB++; pool.Free(d) }); err != nil {
		t.Fatal(err)
	}
	for _, c := range cons {
		if got, err := c.Next(ctx); err != nil || got.Seq != 6 {
			t.Fatalf("batch 6: %+v %v", got, err)
		}
		c.Release(6)
	}
	b.Reap()
	if releasedB != 0 {
		t.Fatal("a batch was released while a holding consumer had not acked it")
	}
	ended := make(chan error, 1)
	go func() { ended <- b.End(ctx) }()
	for _, c := range cons {
		if _, err := c.Next(ctx); err != io.EOF {
			t.Fatalf("the end: %v", err)
		}
	}
	if err := cons[0].AckAll(); err != nil {
		t.Fatal(err)
	}
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	if releasedB != 1 {
		t.Errorf("b's batch released %d times after every ack", releasedB)
	}
	// b dies after its stream was delivered, before it closed: with Replay
	// its successor continues the stream (ended, nothing to publish); without,
	// it starts a new one.
	pb.Detach()
	pc, c := produceAs(t, ctx, seg, "c", "c", ChannelOptions{Consumers: 2, Replay: true})
	if r := c.Resume(); r == nil || *r != (Resume{Batches: 8, Mark: 700, Ended: true}) {
		t.Fatalf("c resumes %+v, want 8 batches, mark 700, ended", r)
	}
	late := pool.Allocate(DescHeaderBytes)
	if _, err := c.Publish(ctx, late, 800, func() { pool.Free(late) }); err == nil || !strings.Contains(err.Error(), "already ended") {
		t.Errorf("publish after the end: %v", err)
	}
	if err := c.End(ctx); err != nil { // nothing to wait for
		t.Fatal(err)
	}
	c.Close()
	pc.Detach()
	pd, dp := produceAs(t, ctx, seg, "d", "c", ChannelOptions{Consumers: 2, Replay: true})
	if dp.Resume() != nil || dp.Next() != 8 {
		t.Errorf("after a closed stream: resume %+v at %d, want a new stream at 8", dp.Resume(), dp.Next())
	}
	rep, err := seg.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	if ch := rep.Channels[0]; ch.Ended || ch.Done || ch.Closed || ch.Published != 8 {
		t.Errorf("the new stream's channel: %+v", ch)
	}
	pd.Detach()
	// a's batches were allocated in the pool this test holds.
	for _, d := range a.pending {
		d.release()
	}
	if releasedA != 5 {
		t.Errorf("a's releases: %d", releasedA)
	}
	pool.Free(d5)
}

// TestChannelHoldFull: a consumer that holds every batch until its output
// is final, on a ring too small for the stream, fails with an error that
// says so instead of waiting for ever.
func TestChannelHoldFull(t *testing.T) {
	pool, path := chanSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seg := pool.Segment()
	_, prod := produceAs(t, ctx, seg, "p", "c", ChannelOptions{Capacity: 2})
	released := 0
	for i := range 2 {
		publish(t, ctx, pool, prod, fmt.Sprint(i), &released)
	}
	s, p := attach(t, path, RoleConsumer)
	defer s.Close()
	cons, err := s.Consume(ctx, p, "c", ChannelOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := cons.Next(ctx); err != nil {
			t.Fatal(i, err)
		}
		cons.Release(uint64(i))
	}
	if _, err := cons.Next(ctx); err == nil || !strings.Contains(err.Error(), "holds every batch") {
		t.Fatalf("a full ring of held batches: %v", err)
	}
	if err := cons.AckAll(); err != nil {
		t.Fatal(err)
	}
	prod.Reap()
	if released != 2 {
		t.Errorf("%d released after AckAll", released)
	}
}

// TestChannelMakerDied: extents a channel's maker claimed before it died
// (its entry never opened) are freed by the next maker of that entry.
func TestChannelMakerDied(t *testing.T) {
	pool, _ := chanSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seg := pool.Segment()
	if _, err := seg.claimExtents(channelOwner|0, 3, 0); err != nil {
		t.Fatal(err)
	}
	pp, err := seg.Attach(RoleProducer, "p")
	if err != nil {
		t.Fatal(err)
	}
	defer pp.Detach()
	if _, err := seg.Produce(ctx, pp, "c", ChannelOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := seg.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.ByOwner["channel 0"]; n != 1 {
		t.Errorf("channel 0 holds %d extents, want its own 1: %v", n, rep.ByOwner)
	}
}

// produceAs attaches to seg as a producer called who and makes (or takes
// over) channel name.
func produceAs(t *testing.T, ctx context.Context, seg *Segment, who, name string, opts ChannelOptions) (*Participant, *Producer) {
	t.Helper()
	pp, err := seg.Attach(RoleProducer, who)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := seg.Produce(ctx, pp, name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return pp, prod
}
