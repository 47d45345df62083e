package netzc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
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

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		err  string
	}{
		{"auto", Auto, ""}, {"copy", Copy, ""}, {"msg_zerocopy", MsgZeroCopy, ""}, {"uring_zc", UringZC, ""},
		{"zc", "", `netzc: unknown send mode "zc" (known: auto, copy, msg_zerocopy, uring_zc)`},
	} {
		got, err := ParseMode(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseMode(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMode(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestUringZCNotLinked(t *testing.T) {
	c, s := pair(t)
	defer c.Close()
	defer s.Close()
	// netzc alone does not link io/netzc/uringzc (and io/uring).
	if _, err := New(c, UringZC, Options{}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "not linked") {
		t.Fatalf("uring_zc: %v, want ErrUnsupported saying it is not linked", err)
	}
	if err := UringZCSupport(); !errors.Is(err, ErrUnsupported) {
		t.Errorf("UringZCSupport: %v", err)
	}
}

// TestSend sends lists of many shapes by every path that exists here and
// checks the bytes, the release discipline and the counters.
func TestSend(t *testing.T) {
	modes := []Mode{Copy, Auto}
	if runtime.GOOS == "linux" {
		modes = append(modes, MsgZeroCopy)
	}
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			c, s := pair(t)
			defer s.Close()
			snd, err := New(c, mode, Options{Threshold: 4096, MaxInFlight: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if snd.Reason() == "" {
				t.Error("no reason")
			}
			var want bytes.Buffer
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(s)
				got <- b
			}()
			released := 0
			// The lists stay reachable until Close: the contract (a caller
			// keeps bufs alive until release) matters here, since the
			// garbage collector would otherwise hand a list's memory to the
			// next bytes.Repeat while a zero-copy send still reads it.
			var held [][][]byte
			sizes := []int{1, 7, 4096, 100000, 1 << 20, 3, 0, 65536}
			for i, n := range sizes {
				a := bytes.Repeat([]byte{byte(i)}, n)
				b := bytes.Repeat([]byte{byte(i + 100)}, n/3)
				want.Write(a)
				want.Write(b)
				list := [][]byte{a, {}, b}
				held = append(held, list)
				completionsAtSend := snd.Stats().Completions
				zc := snd.Mode() != Copy && n+n/3 >= 4096
				if err := snd.Send(list, func() {
					released++
					if zc && snd.Stats().Completions == completionsAtSend {
						t.Errorf("list %d released before its completion arrived", i)
					}
				}); err != nil {
					t.Fatal(err)
				}
			}
			if err := snd.Close(context.Background(), false); err != nil {
				t.Fatal(err)
			}
			runtime.KeepAlive(held)
			if released != len(sizes) {
				t.Errorf("%d releases, want %d", released, len(sizes))
			}
			if b := <-got; !bytes.Equal(b, want.Bytes()) {
				t.Errorf("received %d bytes, want %d (or different content)", len(b), want.Len())
			}
			st := snd.Stats()
			if st.Bytes != int64(want.Len()) {
				t.Errorf("Stats.Bytes %d, want %d", st.Bytes, want.Len())
			}
			if st.CopiedBytes+st.ZeroCopyBytes != st.Bytes {
				t.Errorf("copied %d + zero-copy %d != %d bytes", st.CopiedBytes, st.ZeroCopyBytes, st.Bytes)
			}
			if snd.Mode() != Copy && runtime.GOOS == "linux" {
				if st.ZeroCopySends == 0 || st.Completions != st.ZeroCopySends {
					t.Errorf("zero-copy sends %d, completions %d", st.ZeroCopySends, st.Completions)
				}
				// Loopback: the kernel copies every zero-copy send.
				if st.CopiedCompletions != st.Completions || st.ZeroCopyBytes != 0 {
					t.Errorf("loopback: %d of %d completions flagged copied, %d zero-copy bytes", st.CopiedCompletions, st.Completions, st.ZeroCopyBytes)
				}
			}
		})
	}
}

// TestSendPeerGone: a send to a reset peer fails, and every release runs.
func TestSendPeerGone(t *testing.T) {
	modes := []Mode{Copy}
	if runtime.GOOS == "linux" {
		modes = append(modes, MsgZeroCopy)
	}
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			c, s := pair(t)
			snd, err := New(c, mode, Options{})
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
			snd.Close(context.Background(), true)
			if released != sent {
				t.Errorf("%d releases of %d sends", released, sent)
			}
		})
	}
}
