//go:build linux

package netzc

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAutoTurnsToCopy: on loopback the kernel copies every zero-copy send;
// once auto has seen it copy the first copiedProbe of them, it sends by
// copy, says why, and still delivers every byte and runs every release.
func TestAutoTurnsToCopy(t *testing.T) {
	c, s := pair(t)
	defer s.Close()
	snd, err := New(c, Auto, Options{Threshold: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if snd.Mode() != Auto || !strings.Contains(snd.Reason(), "msg_zerocopy") {
		t.Skipf("auto did not choose msg_zerocopy here: %s", snd.Reason())
	}
	got := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, s)
		got <- n
	}()
	msg := make([]byte, 64<<10)
	released := 0
	release := func() { released++ }
	for range copiedProbe {
		if err := snd.Send([][]byte{msg}, release); err != nil {
			t.Fatal(err)
		}
	}
	if err := snd.Flush(context.Background()); err != nil { // every completion is in
		t.Fatal(err)
	}
	if err := snd.Send([][]byte{msg}, release); err != nil { // judged here
		t.Fatal(err)
	}
	zc := snd.Stats().ZeroCopySends
	for range 4 {
		if err := snd.Send([][]byte{msg}, release); err != nil {
			t.Fatal(err)
		}
	}
	st := snd.Stats()
	if st.ZeroCopySends != zc || !strings.Contains(snd.Reason(), "auto sends by copy") {
		t.Fatalf("after %d copied completions: %d zero-copy sends became %d, reason %q", st.CopiedCompletions, zc, st.ZeroCopySends, snd.Reason())
	}
	if err := snd.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if n, want := <-got, int64(len(msg)*(copiedProbe+5)); n != want || released != copiedProbe+5 || snd.Stats().Bytes != want {
		t.Fatalf("received %d of %d bytes, %d releases of %d, stats %+v", n, want, released, copiedProbe+5, snd.Stats())
	}
}

// TestReaderDoesNotSpinOnCompletions: zero-copy completions waiting in the
// error queue (the sender drains it only on its next send) keep POLLERR
// raised; a Reader waiting for the peer's data meanwhile must sleep, not
// loop through poll and recv. It wakes once for the completions, then at
// its 50ms timeouts, and returns the data when it comes.
func TestReaderDoesNotSpinOnCompletions(t *testing.T) {
	c, s := pair(t)
	defer s.Close()
	snd, err := New(c, MsgZeroCopy, Options{})
	if err != nil {
		t.Skip(err)
	}
	r, err := NewReader(c)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	msg := make([]byte, 64<<10)
	for range 8 {
		if err := snd.Send([][]byte{msg}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.ReadFull(s, make([]byte, 8*len(msg))); err != nil {
		t.Fatal(err)
	}
	// Wait until the completions are in the error queue (POLLERR).
	for {
		pfd := []unix.PollFd{{Fd: int32(r.fd)}}
		if _, err := unix.Poll(pfd, 100); err != nil && err != unix.EINTR {
			t.Fatal(err)
		}
		if pfd[0].Revents&unix.POLLERR != 0 {
			break
		}
	}
	got := make(chan error, 1)
	start := time.Now()
	var elapsed time.Duration
	go func() {
		var b [1]byte
		n, err := r.Read(b[:])
		elapsed = time.Since(start)
		if err == nil && (n != 1 || b[0] != 'x') {
			err = io.ErrUnexpectedEOF
		}
		got <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// One wake for the completions' edge, one per 50ms timeout, one for the
	// data, and slack for the wait that straddles each.
	if bound := int(elapsed/(50*time.Millisecond)) + 4; r.waits > bound {
		t.Fatalf("Read waited %d times in %v (at most %d without spinning)", r.waits, elapsed, bound)
	}
	if err := snd.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
}

// TestZeroCopyKeepsBuffersUntilCompletion: a buffer of Go memory handed
// to a zero-copy send and referred to by nothing else (as a frame header
// is) must stay alive until the kernel has read it. The receiver is slow,
// so sent data waits in the socket's queue, still in the sender's pages,
// while another goroutine runs the garbage collector and fills new
// buffers of the same size with another byte. The receiver must see
// every pattern exactly.
func TestZeroCopyKeepsBuffersUntilCompletion(t *testing.T) {
	c, s := pair(t)
	defer s.Close()
	snd, err := New(c, MsgZeroCopy, Options{})
	if err != nil {
		t.Skipf("msg_zerocopy: %v", err)
	}
	const sends, size = 2000, 4096
	got := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond) // let the queues fill
		buf := make([]byte, size)
		for i := range sends {
			if _, err := io.ReadFull(s, buf); err != nil {
				got <- err
				return
			}
			for k, b := range buf {
				if b != byte(i) {
					got <- fmt.Errorf("send %d, byte %d: %#x, want %#x", i, k, b, byte(i))
					s.Close() // the sender stops too
					return
				}
			}
			if i%100 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
		got <- nil
	}()
	stop := make(chan struct{})
	churned := make(chan struct{})
	go func() { // reuse freed memory as fast as possible
		defer close(churned)
		for {
			select {
			case <-stop:
				return
			default:
			}
			runtime.GC()
			junk := make([][]byte, 256)
			for i := range junk {
				junk[i] = make([]byte, size)
				for k := range junk[i] {
					junk[i][k] = 0xEE
				}
			}
			runtime.KeepAlive(junk)
		}
	}()
	for i := range sends {
		b := make([]byte, size)
		for k := range b {
			b[k] = byte(i)
		}
		if err = snd.Send([][]byte{b}, nil); err != nil {
			break // the receiver says why
		}
	}
	if err == nil {
		err = snd.Close(context.Background(), false)
	}
	close(stop)
	if rerr := <-got; rerr != nil {
		t.Fatal(rerr)
	}
	<-churned
	if err != nil {
		t.Fatal(err)
	}
}
