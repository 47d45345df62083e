package cxl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// ringPair makes a segment with a ring of capacity entries at the start of
// its data region and opens it from two handles, as two processes would.
func ringPair(t *testing.T, capacity int, opts RingOptions) (prod, cons *Ring, a, b *Segment) {
	t.Helper()
	path := filepath.Join(shmDir(t), "seg")
	a, err := Open(path, Options{Create: true, Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.InitRing(a.hdr.DataOff, capacity); err != nil {
		t.Fatal(err)
	}
	b, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if prod, err = a.OpenRing(a.hdr.DataOff, true, opts); err != nil {
		t.Fatal(err)
	}
	if cons, err = b.OpenRing(b.hdr.DataOff, false, opts); err != nil {
		t.Fatal(err)
	}
	return prod, cons, a, b
}

func TestRingOrder(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range []struct {
		capacity int
		opts     RingOptions
	}{
		{2, RingOptions{}},
		{8, RingOptions{Check: time.Millisecond}},
		{1024, RingOptions{Spin: 20 * time.Microsecond}},
	} {
		t.Run(fmt.Sprintf("cap=%d/spin=%v", tc.capacity, tc.opts.Spin), func(t *testing.T) {
			prod, cons, _, _ := ringPair(t, tc.capacity, tc.opts)
			const n = 20000
			ctx := context.Background()
			done := make(chan error, 1)
			go func() {
				for i := range uint64(n) {
					seq, err := prod.Push(ctx, i*7, ^i, nil)
					if err != nil || seq != i {
						done <- fmt.Errorf("push %d: seq %d, %v", i, seq, err)
						return
					}
				}
				done <- nil
			}()
			for i := range uint64(n) {
				e, err := cons.Pop(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				if e != (Entry{Seq: i, A: i * 7, B: ^i}) {
					t.Fatalf("entry %d: %+v", i, e)
				}
				if err := cons.Ack(i + 1); err != nil {
					t.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if cons.Len() != 0 {
				t.Errorf("len %d after draining", cons.Len())
			}
		})
	}
}

func TestRingWaitEnds(t *testing.T) {
	defer goleak.VerifyNone(t)
	prod, cons, _, _ := ringPair(t, 2, RingOptions{Check: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := cons.Pop(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("pop from an empty ring past the deadline: %v", err)
	}
	gone := errors.New("producer pid 4242 is dead")
	if _, err := cons.Pop(context.Background(), func() error { return gone }); !errors.Is(err, ErrPeerGone) || !errors.Is(err, gone) {
		t.Errorf("pop with the producer gone: %v", err)
	}
	for range 2 {
		if _, err := prod.Push(context.Background(), 1, 2, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := prod.Push(context.Background(), 1, 2, func() error { return gone }); !errors.Is(err, ErrPeerGone) {
		t.Errorf("push to a full ring with the consumer gone: %v", err)
	}
	// Popped is not acked: the ring stays full until the consumer acks.
	cons.Pop(context.Background(), nil)
	if _, err := prod.Push(context.Background(), 1, 2, func() error { return gone }); !errors.Is(err, ErrPeerGone) {
		t.Errorf("push after a pop without an ack: %v", err)
	}
	if err := cons.Ack(2); err == nil {
		t.Error("acked more than was popped")
	}
	cons.Ack(1)
	if _, err := prod.Push(context.Background(), 1, 2, nil); err != nil {
		t.Errorf("push after an ack: %v", err)
	}
}

// TestRingRewind: a consumer that takes over pops again what its
// predecessor popped but did not ack.
func TestRingRewind(t *testing.T) {
	prod, cons, _, b := ringPair(t, 8, RingOptions{})
	ctx := context.Background()
	for i := range uint64(5) {
		prod.Push(ctx, i, 0, nil)
	}
	for range 4 {
		cons.Pop(ctx, nil)
	}
	cons.Ack(2)
	again, err := b.OpenRing(b.hdr.DataOff, false, RingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	again.Rewind()
	for want := uint64(2); want < 5; want++ {
		e, err := again.Pop(ctx, nil)
		if err != nil || e.A != want {
			t.Fatalf("after rewind: %+v %v, want entry %d", e, err, want)
		}
	}
}

// TestRingCorruption: whatever another process scribbles over a ring, the
// reader reports it with the offset and does not advance or panic.
func TestRingCorruption(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(s *Segment, off int64)
		want string
	}{
		{"entry checksum", func(s *Segment, off int64) { s.mem[off+ringHeader+9] ^= 0xFF }, "checksum"},
		{"entry sequence", func(s *Segment, off int64) {
			e := s.mem[off+ringHeader:]
			binary.LittleEndian.PutUint64(e, 99)
			binary.LittleEndian.PutUint32(e[32:], crc(e[:32]))
		}, "sequence 99, want 0"},
		{"tail far ahead", func(s *Segment, off int64) { binary.LittleEndian.PutUint64(s.mem[off+ringTail:], 1<<40) }, "entries past head"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prod, cons, a, _ := ringPair(t, 4, RingOptions{})
			if _, err := prod.Push(context.Background(), 5, 6, nil); err != nil {
				t.Fatal(err)
			}
			tc.edit(a, a.hdr.DataOff)
			_, err := cons.Pop(context.Background(), nil)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "offset") {
				t.Fatalf("pop: %v, want %q", err, tc.want)
			}
			if cons.mine != 0 {
				t.Error("the consumer advanced past a bad entry")
			}
		})
	}
	// A ring header that makes no sense is refused when opened.
	_, _, a, b := ringPair(t, 4, RingOptions{})
	binary.LittleEndian.PutUint32(a.mem[a.hdr.DataOff+ringCap:], 3)
	if _, err := b.OpenRing(b.hdr.DataOff, false, RingOptions{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("capacity 3: %v", err)
	}
	binary.LittleEndian.PutUint32(a.mem[a.hdr.DataOff+ringCap:], 1<<30)
	if _, err := b.OpenRing(b.hdr.DataOff, false, RingOptions{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("capacity 2^30: %v", err)
	}
	if _, err := b.OpenRing(int64(len(b.mem))-64, false, RingOptions{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ring past the end: %v", err)
	}
	if err := a.InitRing(a.hdr.DataOff+8, 4); !errors.Is(err, ErrCorrupt) {
		t.Errorf("misaligned ring: %v", err)
	}
}

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// TestRingAcrossProcesses: another process pushes, this one pops, through
// futex sleeps and wakes on both sides (a small ring fills often).
func TestRingAcrossProcesses(t *testing.T) {
	if path := os.Getenv("ZFLOW_CXL_RING_CHILD"); path != "" {
		ringChild(path)
		return
	}
	path := filepath.Join(shmDir(t), "seg")
	s, err := Open(path, Options{Create: true, Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.InitRing(s.hdr.DataOff, 4); err != nil {
		t.Fatal(err)
	}
	cons, err := s.OpenRing(s.hdr.DataOff, false, RingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50000
	cmd := exec.Command(os.Args[0], "-test.run=^TestRingAcrossProcesses$")
	cmd.Env = append(os.Environ(), "ZFLOW_CXL_RING_CHILD="+path, "ZFLOW_CXL_RING_N="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range uint64(n) {
		e, err := cons.Pop(ctx, nil)
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal(err)
		}
		if e.A != i*3 || e.B != i+1 {
			t.Fatalf("entry %d: %+v", i, e)
		}
		if i%3 == 2 { // ack in bunches
			cons.Ack(i + 1)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func ringChild(path string) {
	n, _ := strconv.Atoi(os.Getenv("ZFLOW_CXL_RING_N"))
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	prod, err := s.OpenRing(s.hdr.DataOff, true, RingOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := range uint64(n) {
		if _, err := prod.Push(context.Background(), i*3, i+1, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	os.Exit(0)
}

// TestRingBytesAligned: rings laid out one after another stay 64-byte
// aligned whatever their capacity.
func TestRingBytesAligned(t *testing.T) {
	for c := 2; c <= maxRingCap; c *= 2 {
		if n := RingBytes(c); n%64 != 0 || n < ringHeader+int64(c)*RingEntryBytes {
			t.Errorf("RingBytes(%d) = %d", c, n)
		}
	}
}
