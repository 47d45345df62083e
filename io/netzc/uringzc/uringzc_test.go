//go:build linux

package uringzc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/io/netzc"
	"github.com/zflowdev/zflow/io/uring"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t testing.TB) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// needZC skips when this kernel or process cannot send with io_uring.
func needZC(t testing.TB) {
	t.Helper()
	if _, err := uring.SendZCSupport(); err != nil {
		t.Skipf("no io_uring SEND_ZC here: %v", err)
	}
}

// TestRegistered: linking this package gives netzc the uring_zc path.
func TestRegistered(t *testing.T) {
	needZC(t)
	if err := netzc.UringZCSupport(); err != nil {
		t.Fatal(err)
	}
	c, s := pair(t)
	defer s.Close()
	snd, err := netzc.New(c, netzc.UringZC, netzc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close(context.Background(), false)
	if snd.Mode() != netzc.UringZC || snd.Reason() == "" {
		t.Errorf("mode %q reason %q", snd.Mode(), snd.Reason())
	}
	// auto is not changed by linking uring_zc.
	c2, s2 := pair(t)
	defer s2.Close()
	auto, err := netzc.New(c2, netzc.Auto, netzc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer auto.Close(context.Background(), false)
	if auto.Mode() == netzc.UringZC {
		t.Error("auto chose uring_zc")
	}
}

// TestSend sends lists of many shapes, each buffer from a checked
// allocator freed by the list's release, and checks the bytes, that no
// list is released before its notifications, and the counters (loopback:
// every notification says copied).
func TestSend(t *testing.T) {
	needZC(t)
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	arena, err := buffers.New(buffers.ArenaConfig{Kind: buffers.KindPlain, ExtentSize: 16 << 20, QuietFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer arena.Close()
	amem := memory.NewCheckedAllocator(arena)
	defer amem.AssertSize(t, 0)
	for _, tc := range []struct {
		maxInFlight int
		single      bool // SEND_ZC per buffer, as on a kernel without SENDMSG_ZC
		registered  bool // buffers from an arena whose extents are registered
	}{{0, false, false}, {300 << 10, false, false}, {0, true, false}, {0, false, true}, {0, true, true}} {
		c, s := pair(t)
		opts := netzc.Options{MaxInFlight: tc.maxInFlight}
		mem := mem
		if tc.registered {
			mem = amem
			opts.Registered = arena.Arena().Extents()
		}
		snd, err := New(c, opts)
		if err != nil {
			t.Fatal(err)
		}
		if tc.single {
			snd.zs.SingleBuffer()
		}
		var want bytes.Buffer
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(s)
			s.Close()
			got <- b
		}()
		released := 0
		sizes := []int{1, 7, 4096, 100000, 1 << 20, 3, 0, 65536, 4 << 20}
		for i, n := range sizes {
			a := mem.Allocate(n)
			b := mem.Allocate(n / 3)
			for j := range a {
				a[j] = byte(i + j)
			}
			for j := range b {
				b[j] = byte(i * j)
			}
			want.Write(a)
			want.Write(b)
			list := [][]byte{a, {}, b}
			if n == 65536 {
				// more buffers than one request takes
				list = list[:0]
				for j := 0; j < 1500; j++ {
					list = append(list, a[j*40:j*40+40])
				}
				want.Truncate(want.Len() - n - n/3)
				want.Write(a[:1500*40])
				list = append(list, b)
				want.Write(b)
			}
			notifAtSend := snd.Stats().Completions
			sent := n + n/3
			if err := snd.Send(list, func() {
				released++
				if sent > 0 && snd.Stats().Completions == notifAtSend {
					t.Errorf("list %d released before its notification arrived", i)
				}
				if sent > 0 && len(snd.calls) > 0 && !snd.calls[0].done() {
					t.Errorf("list %d released with its last request's notification missing", i)
				}
				mem.Free(a)
				mem.Free(b)
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := snd.Close(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		if released != len(sizes) {
			t.Errorf("%d releases, want %d", released, len(sizes))
		}
		if n := snd.InFlight(); n != 0 {
			t.Errorf("%d completions in flight after Close", n)
		}
		if b := <-got; !bytes.Equal(b, want.Bytes()) {
			t.Errorf("received %d bytes, want %d (or different content)", len(b), want.Len())
		}
		st := snd.Stats()
		if st.Bytes != int64(want.Len()) {
			t.Errorf("Stats.Bytes %d, want %d", st.Bytes, want.Len())
		}
		if tc.registered && st.FixedSends == 0 {
			t.Errorf("registered buffers: no request sent a registered buffer (vectored %v)", snd.zs.Vectored())
		}
		if !tc.registered && st.FixedSends != 0 {
			t.Errorf("%d requests sent a registered buffer without registration", st.FixedSends)
		}
		if tc.single && st.ZeroCopySends < 1500 {
			t.Errorf("single-buffer sends: %d requests for more than 1500 buffers", st.ZeroCopySends)
		}
		if st.ZeroCopySends == 0 || st.Completions != st.ZeroCopySends {
			t.Errorf("zero-copy sends %d, notifications %d", st.ZeroCopySends, st.Completions)
		}
		// Loopback: the kernel copies every zero-copy send.
		if st.CopiedCompletions != st.Completions || st.ZeroCopyBytes != 0 || st.CopiedBytes != st.Bytes {
			t.Errorf("loopback: %d of %d notifications flagged copied, %d copied and %d zero-copy of %d bytes",
				st.CopiedCompletions, st.Completions, st.CopiedBytes, st.ZeroCopyBytes, st.Bytes)
		}
	}
}

// TestAbort: a stream cut while the peer reads nothing (the socket's
// buffers full, notifications pending) releases every list, leaves no
// request in flight and no goroutine.
func TestAbort(t *testing.T) {
	needZC(t)
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c, s := pair(t)
	defer s.Close()
	snd, err := New(c, netzc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The peer never reads: sends go on until the socket is full and one
	// waits in the kernel; the write deadline cancels it (as stream.Abort
	// bounds its error frame), then Close aborts with lists still
	// awaiting their notifications.
	released, sends := 0, 0
	var serr error
	var sender netzc.Sender = snd
	if err := netzc.SetWriteDeadline(sender, c, time.Now().Add(500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 64 && serr == nil; i++ {
		buf := mem.Allocate(256 << 10)
		sends++
		serr = snd.Send([][]byte{buf}, func() { released++; mem.Free(buf) })
	}
	if !errors.Is(serr, os.ErrDeadlineExceeded) {
		t.Fatalf("sends to a peer that reads nothing: %v, want the write deadline", serr)
	}
	if err := snd.Send([][]byte{{1}}, nil); err == nil {
		t.Error("a send after a cancelled one succeeded")
	}
	if snd.InFlight() == 0 {
		t.Log("no notification pending at Close")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cerr := snd.Close(ctx, true)
	if cerr != nil {
		t.Logf("close: %v", cerr)
	}
	if released != sends {
		t.Errorf("%d releases of %d sends", released, sends)
	}
	if n := snd.InFlight(); n != 0 {
		t.Errorf("%d completions in flight after Close", n)
	}
}

// TestPeerGone: a send to a reset peer fails, and every release runs.
func TestPeerGone(t *testing.T) {
	needZC(t)
	c, s := pair(t)
	snd, err := New(c, netzc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.SetLinger(0)
	s.Close()
	released, sent := 0, 0
	buf := make([]byte, 256<<10)
	var serr error
	for i := 0; i < 200 && serr == nil; i++ {
		sent++
		serr = snd.Send([][]byte{buf}, func() { released++ })
	}
	if serr == nil {
		t.Fatal("sending to a closed peer did not fail")
	}
	if !errors.Is(serr, syscall.EPIPE) && !errors.Is(serr, syscall.ECONNRESET) {
		t.Logf("error: %v", serr)
	}
	snd.Close(context.Background(), true)
	if released != sent {
		t.Errorf("%d releases of %d sends", released, sent)
	}
	if n := snd.InFlight(); n != 0 {
		t.Errorf("%d completions in flight after Close", n)
	}
}

// TestAttachWaitsForOlder: a list whose newest request is done while an
// older one still awaits its notification is not released until that one
// arrives (notifications may come out of order).
func TestAttachWaitsForOlder(t *testing.T) {
	s := &Sender{calls: []call{
		{tag: 1, result: true, more: true},                 // notification missing
		{tag: 2, result: true, more: true, notified: true}, // done
	}}
	released := false
	s.attach(func() { released = true }, nil)
	s.releaseDone()
	if released {
		t.Fatal("released while request 1 still awaits its notification")
	}
	s.event(uring.ZCEvent{Tag: 1, Notif: true})
	s.releaseDone()
	if !released || len(s.calls) != 0 {
		t.Fatalf("released %v, %d requests left after the last notification", released, len(s.calls))
	}
}
