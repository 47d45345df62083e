package cxl

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkRingPingPong: one entry goes to the other side and one comes
// back, per op, through two rings of one segment mapped twice; half an
// op is one handoff. Parked sleeps on the futex at once; spin spins 50 µs
// first. On a shared 2-CPU machine spinning competes with the peer:
// compare the two in one run.
func BenchmarkRingPingPong(b *testing.B) {
	for _, tc := range []struct {
		name string
		spin time.Duration
	}{{"parked", 0}, {"spin", 50 * time.Microsecond}} {
		b.Run(tc.name, func(b *testing.B) {
			dir, err := os.MkdirTemp("/dev/shm", "zflow-cxl-bench-")
			if err != nil {
				b.Skip(err)
			}
			defer os.RemoveAll(dir)
			s, err := Open(filepath.Join(dir, "seg"), Options{Create: true, Size: 8 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			o, err := Open(s.name, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer o.Close()
			there, back := s.hdr.DataOff, s.hdr.DataOff+RingBytes(64)
			s.InitRing(there, 64)
			s.InitRing(back, 64)
			opts := RingOptions{Spin: tc.spin}
			ping, _ := s.OpenRing(there, true, opts)
			pong, _ := s.OpenRing(back, false, opts)
			peerIn, _ := o.OpenRing(there, false, opts)
			peerOut, _ := o.OpenRing(back, true, opts)
			ctx := context.Background()
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					e, err := peerIn.Pop(ctx, nil)
					if err != nil || e.A == ^uint64(0) {
						return
					}
					peerIn.Ack(e.Seq + 1)
					peerOut.Push(ctx, e.A, 0, nil)
				}
			}()
			for i := 0; b.Loop(); i++ {
				ping.Push(ctx, uint64(i), 0, nil)
				e, _ := pong.Pop(ctx, nil)
				pong.Ack(e.Seq + 1)
			}
			ping.Push(ctx, ^uint64(0), 0, nil)
			<-done
		})
	}
}
