//go:build linux

package uring

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
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

// TestZCSocket submits vectored and single-buffer zero-copy sends and
// checks each request's completions: a result with More and the bytes
// sent, then a notification flagged copied (loopback always copies).
func TestZCSocket(t *testing.T) {
	if _, err := SendZCSupport(); err != nil {
		t.Skipf("no SEND_ZC here: %v", err)
	}
	for _, single := range []bool{false, true} {
		c, s := tcpPair(t)
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(s)
			s.Close()
			got <- b
		}()
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var zs *ZCSocket
		var zerr error
		rc.Control(func(fd uintptr) { zs, zerr = NewZCSocket(int(fd), 8) })
		if zerr != nil {
			t.Fatal(zerr)
		}
		if single {
			zs.SingleBuffer()
		}
		bufs := [][]byte{bytes.Repeat([]byte("a"), 1000), {}, bytes.Repeat([]byte("b"), 70000), bytes.Repeat([]byte("c"), 5)}
		var want bytes.Buffer
		results, notifs := map[uint64]ZCEvent{}, map[uint64]ZCEvent{}
		rem := bufs
		for tag := uint64(1); len(rem) > 0; tag++ {
			if len(rem[0]) == 0 {
				rem = rem[1:]
				continue
			}
			k, err := zs.Submit(tag, rem)
			if err != nil {
				t.Fatal(err)
			}
			if want := 1; single && k != want {
				t.Fatalf("single-buffer submit took %d buffers", k)
			}
			n := 0
			for _, b := range rem[:k] {
				n += len(b)
				want.Write(b)
			}
			for results[tag].Tag != tag {
				if err := zs.Reap(20*time.Millisecond, func(ev ZCEvent) {
					if ev.Notif {
						notifs[ev.Tag] = ev
					} else {
						results[ev.Tag] = ev
					}
				}); err != nil {
					t.Fatal(err)
				}
			}
			if r := results[tag]; int(r.Res) != n || !r.More {
				t.Fatalf("tag %d: result %+v, want %d bytes with More", tag, r, n)
			}
			rem = rem[k:]
		}
		if single && len(results) != 3 || !single && len(results) != 1 {
			t.Errorf("single %v: %d requests", single, len(results))
		}
		for deadline := time.Now().Add(5 * time.Second); zs.InFlight() > 0 && time.Now().Before(deadline); {
			zs.Reap(20*time.Millisecond, func(ev ZCEvent) {
				if ev.Notif {
					notifs[ev.Tag] = ev
				}
			})
		}
		if zs.InFlight() != 0 || len(notifs) != len(results) {
			t.Fatalf("%d in flight, %d notifications for %d requests", zs.InFlight(), len(notifs), len(results))
		}
		for tag, ev := range notifs {
			if !ev.Copied {
				t.Errorf("tag %d: loopback notification not flagged copied", tag)
			}
		}
		if err := zs.Close(false); err != nil {
			t.Fatal(err)
		}
		if _, err := zs.Submit(9, bufs); err == nil {
			t.Error("submit on a closed ring succeeded")
		}
		c.Close()
		if b := <-got; !bytes.Equal(b, want.Bytes()) {
			t.Errorf("received %d bytes, want %d", len(b), want.Len())
		}
	}
}

// TestZCSocketDisabled: where io_uring is refused, SendZCSupport and
// NewZCSocket say why.
func TestZCSocketDisabled(t *testing.T) {
	withSysctl(t, "2", "")
	if _, err := SendZCSupport(); err == nil || !strings.Contains(err.Error(), "io_uring_disabled = 2") {
		t.Fatalf("SendZCSupport while disabled: %v", err)
	}
	if _, err := NewZCSocket(0, 1); err == nil || !strings.Contains(err.Error(), "disabled for every process") {
		t.Fatalf("NewZCSocket while disabled: %v", err)
	}
}
