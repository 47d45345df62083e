//go:build linux

package uring

import (
	"bytes"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// TestRecvRing receives 3 MiB through a multishot RECV into 4 provided
// buffers of 64 KiB, handing each buffer back as soon as its bytes are
// taken, in both consumption modes, and checks the bytes arrive in order,
// that the request re-arms after the ring ran dry (ENOBUFS) and that
// nothing is in flight after the peer's close.
func TestRecvRing(t *testing.T) {
	inc, err := RecvMultishotSupport()
	if err != nil {
		t.Skipf("no multishot receive here: %v", err)
	}
	modes := []bool{false}
	if inc {
		modes = append(modes, true)
	}
	for _, incremental := range modes {
		c, s := tcpPair(t)
		want := make([]byte, 3<<20)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range want {
			want[i] = byte(rng.Uint32())
		}
		go func() {
			c.Write(want)
			c.Close()
		}()
		rc, _ := s.SyscallConn()
		var rr *RecvRing
		var rerr error
		rc.Control(func(fd uintptr) { rr, rerr = NewRecvRing(int(fd), 4, incremental) })
		if rerr != nil {
			t.Fatal(rerr)
		}
		bufs := make([][]byte, 4)
		fill := make([]int, 4)
		for i := range bufs {
			bufs[i] = make([]byte, 64<<10)
			rr.Provide(uint16(i), bufs[i])
		}
		var got []byte
		ended, rearmed := false, 0
		for !ended {
			if !rr.Armed() {
				if err := rr.Arm(); err != nil {
					t.Fatal(err)
				}
			}
			err := rr.Wait(20*time.Millisecond, func(ev RecvEvent) {
				switch {
				case ev.Res == 0:
					ended = true
				case ev.Res == -int32(syscall.ENOBUFS):
					rearmed++
				case ev.Res < 0:
					t.Fatalf("receive: %v", syscall.Errno(-ev.Res))
				case !ev.HasBuf:
					t.Fatalf("%d bytes without a buffer", ev.Res)
				default:
					b := ev.Buf
					got = append(got, bufs[b][fill[b]:fill[b]+int(ev.Res)]...)
					if ev.BufMore {
						fill[b] += int(ev.Res)
					} else {
						fill[b] = 0
						rr.Provide(b, bufs[b])
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("incremental %v: got %d bytes, want %d (equal prefix %d)", incremental, len(got), len(want), commonPrefix(got, want))
		}
		if rr.InFlight() != 0 {
			t.Fatalf("%d requests in flight after the end", rr.InFlight())
		}
		if err := rr.Close(false); err != nil {
			t.Fatal(err)
		}
		s.Close()
		t.Logf("incremental %v: %d re-arms after ENOBUFS", incremental, rearmed)
	}
}

// TestRecvRingCancel cancels an armed receive on an idle connection: the
// request's last completion arrives and Close then succeeds; Close before
// that refuses.
func TestRecvRingCancel(t *testing.T) {
	if _, err := RecvMultishotSupport(); err != nil {
		t.Skipf("no multishot receive here: %v", err)
	}
	c, s := tcpPair(t)
	defer c.Close()
	defer s.Close()
	rc, _ := s.SyscallConn()
	var rr *RecvRing
	var rerr error
	rc.Control(func(fd uintptr) { rr, rerr = NewRecvRing(int(fd), 2, false) })
	if rerr != nil {
		t.Fatal(rerr)
	}
	rr.Provide(0, make([]byte, 4096))
	if err := rr.Arm(); err != nil {
		t.Fatal(err)
	}
	if err := rr.Close(false); err == nil {
		t.Fatal("Close with a receive in flight succeeded")
	}
	if err := rr.Cancel(); err != nil {
		t.Fatal(err)
	}
	var last RecvEvent
	for rr.InFlight() > 0 {
		if err := rr.Wait(20*time.Millisecond, func(ev RecvEvent) { last = ev }); err != nil {
			t.Fatal(err)
		}
	}
	if last.More || last.Res != -int32(syscall.ECANCELED) {
		t.Fatalf("last completion %+v, want -ECANCELED without More", last)
	}
	if err := rr.Close(false); err != nil {
		t.Fatal(err)
	}
}

func commonPrefix(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}
