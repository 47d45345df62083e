package cxl

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fuzzSegment is one segment on tmpfs for a fuzzing process, with a
// channel whose consumer the targets read through.
var fuzzSegment = sync.OnceValues(func() (*Consumer, error) {
	dir, err := os.MkdirTemp("/dev/shm", "zflow-cxl-fuzz-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "seg")
	s, err := Open(path, Options{Create: true, Size: 16 << 20})
	if err != nil {
		return nil, err
	}
	os.RemoveAll(dir) // the mapping stays
	ctx := context.Background()
	p, err := s.Attach(RoleProducer, "fuzz")
	if err != nil {
		return nil, err
	}
	if _, err := s.Produce(ctx, p, "f", ChannelOptions{Schema: []byte("schema")}); err != nil {
		return nil, err
	}
	c, err := s.Attach(RoleConsumer, "fuzz")
	if err != nil {
		return nil, err
	}
	return s.Consume(ctx, c, "f", ChannelOptions{})
})

// FuzzDescriptor: whatever a ring entry and the bytes it points at say,
// reading the descriptor never panics and never reads outside the data
// region; an accepted descriptor is what a producer writes.
func FuzzDescriptor(f *testing.F) {
	good := make([]byte, DescHeaderBytes+8)
	binary.LittleEndian.PutUint32(good, descMagic)
	binary.LittleEndian.PutUint32(good[4:], uint32(len(good)))
	binary.LittleEndian.PutUint64(good[8:], 3)
	copy(good[DescHeaderBytes:], "payload!")
	binary.LittleEndian.PutUint32(good[16:], crc(good[DescHeaderBytes:]))
	f.Add(uint64(3), uint64(0), uint64(len(good)), good)
	f.Add(uint64(0), uint64(1<<63), uint64(24), good)
	f.Add(uint64(9), uint64(8), uint64(1<<40), []byte{})
	f.Fuzz(func(t *testing.T, seq, rel, n uint64, desc []byte) {
		c, err := fuzzSegment()
		if err != nil {
			t.Skip(err)
		}
		s := c.seg
		// Put desc at a fixed place in the data region (past the
		// channel's extent), and point the entry at rel from there.
		at := s.hdr.DataOff + s.hdr.ExtentSize
		copy(s.mem[at:at+4096], make([]byte, 4096))
		copy(s.mem[at:at+min(int64(len(desc)), 4096)], desc)
		d, err := c.read(Entry{Seq: seq, A: uint64(at) + rel, B: n})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not marked corrupt: %v", err)
			}
			return
		}
		if d.Seq != seq || int64(len(d.Payload))+DescHeaderBytes != int64(n) {
			t.Fatalf("accepted %+v for entry seq %d, %d bytes", d, seq, n)
		}
	})
}

// FuzzRing: a ring header and entries of any content open or are refused
// and pop or fail, without a panic.
func FuzzRing(f *testing.F) {
	f.Add(uint32(4), uint32(RingEntryBytes), uint64(0), uint64(1), uint64(1), []byte{})
	f.Add(uint32(3), uint32(RingEntryBytes), uint64(0), uint64(0), uint64(0), []byte{1, 2, 3})
	f.Add(uint32(8), uint32(RingEntryBytes), uint64(5), uint64(2), uint64(9), make([]byte, 64))
	f.Fuzz(func(t *testing.T, capacity, entryBytes uint32, acked, head, tail uint64, entries []byte) {
		c, err := fuzzSegment()
		if err != nil {
			t.Skip(err)
		}
		s := c.seg
		off := s.hdr.DataOff + s.hdr.ExtentSize + 8192
		b := s.mem[off : off+ringHeader+4096]
		clear(b)
		le := binary.LittleEndian
		le.PutUint32(b[ringCap:], capacity)
		le.PutUint32(b[ringEntryB:], entryBytes)
		le.PutUint64(b[ringAcked:], acked)
		le.PutUint64(b[ringHead:], head)
		le.PutUint64(b[ringTail:], tail)
		copy(b[ringHeader:], entries)
		r, err := s.OpenRing(off, false, RingOptions{Check: time.Millisecond})
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		for range 4 {
			if _, err := r.Pop(ctx, nil); err != nil {
				return
			}
		}
	})
}

// TestLiveCorruption: bytes flipped at random in a live segment's tables,
// rings and descriptors while batches flow make the consumer fail with an
// error, or carry on when the flip was harmless; it never crashes, and
// every batch it accepts is one the producer wrote.
func TestLiveCorruption(t *testing.T) {
	var errored int
	for trial := range 30 {
		pool, path := chanSetup(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		seg := pool.Segment()
		pp, _ := seg.Attach(RoleProducer, "p")
		prod, err := seg.Produce(ctx, pp, "c", ChannelOptions{Capacity: 8, Schema: []byte("s")})
		if err != nil {
			t.Fatal(err)
		}
		cs, cp := attach(t, path, RoleConsumer)
		cons, err := cs.Consume(ctx, cp, "c", ChannelOptions{Wait: time.Second, Ring: RingOptions{Check: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(trial), 7))
		// What may be hit: the channel table, the channel's rings, the
		// descriptors' extent.
		ch := seg.chanOff(cons.idx)
		regions := [][2]int64{
			{ch, ch + int64(seg.hdr.Channels.Bytes)},
			{seg.hdr.DataOff, seg.hdr.DataOff + RingBytes(8)},
		}
		done := make(chan error, 1)
		go func() {
			defer cancel() // the producer stops waiting once the consumer is gone
			for {
				d, err := cons.Next(ctx)
				if err == io.EOF {
					done <- nil
					return
				}
				if err != nil {
					done <- err
					return
				}
				if len(d.Payload) != 16 || binary.LittleEndian.Uint64(d.Payload) != d.Seq*31 {
					done <- errors.New("accepted a batch the producer did not write")
					return
				}
				cons.Release(d.Seq)
			}
		}()
		var released int
		var descs [][]byte
		for i := 0; i < 200; i++ {
			d := pool.Allocate(DescHeaderBytes + 16)
			binary.LittleEndian.PutUint64(d[DescHeaderBytes:], uint64(i)*31)
			descs = append(descs, d)
			if _, err := prod.Publish(ctx, d, prod.Next()+1, func() { released++ }); err != nil {
				break
			}
			if i%10 == 5 {
				var r [2]int64
				if rng.IntN(3) == 0 {
					if off, ok := seg.Contains(d); ok {
						r = [2]int64{off, off + int64(len(d))}
					}
				} else {
					r = regions[rng.IntN(len(regions))]
				}
				if r[1] > r[0] {
					seg.mem[r[0]+rng.Int64N(r[1]-r[0])] ^= byte(1 + rng.IntN(255))
				}
			}
		}
		cancel() // stop whichever side waits
		switch err := <-done; {
		case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		case errors.Is(err, ErrCorrupt):
			errored++
		default:
			t.Errorf("trial %d: %v", trial, err)
		}
		prod.Abandon()
		for _, d := range descs {
			pool.Free(d)
		}
		cs.Close()
	}
	t.Logf("%d of 30 trials ended with the corruption reported", errored)
	if errored == 0 {
		t.Error("no flip was ever detected: the test flips nothing that matters")
	}
}
