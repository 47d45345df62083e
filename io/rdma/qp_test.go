//go:build linux

package rdma

import (
	"bytes"
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// checkGoroutines fails t when goroutines started after before are still
// running shortly after the test's end.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines left running (before: %d):\n%s", n-before, before, buf[:runtime.Stack(buf, true)])
	}
}

// pairQPs connects two QPs over loopback TCP: a is the requester, b the
// responder with a shared region of size bytes allowing access.
type qpPair struct {
	apd, bpd *PD
	acq, bcq *CQ
	a, b     *QP
	region   *MR
	src      *MR
	srcMem   []byte
}

func newPair(t *testing.T, size int, access Access, mapped bool) *qpPair {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	ca, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cb := <-ch
	p := &qpPair{apd: NewPD(), bpd: NewPD(), acq: NewCQ(), bcq: NewCQ()}
	p.a, p.b = NewQP(ca, p.apd, p.acq), NewQP(cb, p.bpd, p.bcq)
	if p.region, err = p.bpd.AllocShared(size, access); err != nil {
		t.Fatal(err)
	}
	p.srcMem = make([]byte, size)
	for i := range p.srcMem {
		p.srcMem[i] = byte(i*7 + 1)
	}
	if p.src, err = p.apd.Register(p.srcMem, LocalWrite); err != nil {
		t.Fatal(err)
	}
	if mapped {
		h, _ := p.region.handle()
		if err := p.a.MapRemote(p.region.RKey, h); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *qpPair) close(t *testing.T) {
	t.Helper()
	p.a.Close()
	p.b.Close()
	p.apd.Close()
	p.bpd.Close()
	if n := p.apd.Registered() + p.bpd.Registered(); n != 0 {
		t.Fatalf("%d regions left registered", n)
	}
}

func poll(t *testing.T, cq *CQ) Completion {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs := make([]Completion, 1)
	if _, err := cq.Poll(ctx, cs); err != nil {
		t.Fatalf("no completion: %v", err)
	}
	return cs[0]
}

func TestQPWriteReadImm(t *testing.T) {
	for _, mapped := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "mapped"}[mapped], func(t *testing.T) {
			before := runtime.NumGoroutine()
			p := newPair(t, 1<<20, RemoteWrite|RemoteRead, mapped)
			if err := p.b.PostRecv(77); err != nil {
				t.Fatal(err)
			}
			// A gather list of two pieces, then a signaled WRITE_WITH_IMM.
			sgl := []SGE{{Buf: p.srcMem[100:300], LKey: p.src.LKey}, {Buf: p.srcMem[5000:5100], LKey: p.src.LKey}}
			must(t, p.a.Post(WR{ID: 1, Op: OpWrite, SGL: sgl, Remote: Remote{RKey: p.region.RKey, Offset: 4096}}))
			must(t, p.a.Post(WR{ID: 2, Op: OpWriteImm, SGL: []SGE{{Buf: p.srcMem[:64], LKey: p.src.LKey}},
				Remote: Remote{RKey: p.region.RKey, Offset: 0}, Imm: 0xabc, Signaled: true}))
			if c := poll(t, p.acq); c.WRID != 2 || c.Status != Success {
				t.Fatalf("requester completion %+v", c)
			}
			if c := poll(t, p.bcq); c.WRID != 77 || c.Op != OpRecv || c.Imm != 0xabc || c.Bytes != 64 {
				t.Fatalf("responder completion %+v", c)
			}
			got := p.region.mem
			want := append(append([]byte{}, p.srcMem[100:300]...), p.srcMem[5000:5100]...)
			if !bytes.Equal(got[4096:4396], want) || !bytes.Equal(got[:64], p.srcMem[:64]) {
				t.Fatal("the WRITEs did not land")
			}
			// READ back into another part of the local region.
			dst := p.srcMem[200000:200300]
			must(t, p.a.Post(WR{ID: 3, Op: OpRead, SGL: []SGE{{Buf: dst, LKey: p.src.LKey}}, Remote: Remote{RKey: p.region.RKey, Offset: 4096}, Signaled: true}))
			if c := poll(t, p.acq); c.WRID != 3 || c.Status != Success || c.Bytes != 300 {
				t.Fatalf("read completion %+v", c)
			}
			if !bytes.Equal(dst, want) {
				t.Fatal("the READ returned other bytes")
			}
			placed, _ := p.a.Stats()
			_, received := p.b.Stats()
			if mapped && (placed != 364 || received != 0) || !mapped && (placed != 0 || received != 364) {
				t.Fatalf("placed %d, received %d", placed, received)
			}
			p.close(t)
			checkGoroutines(t, before)
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Faults put both ends in the error state with the reason, flush what is
// outstanding, and leave nothing registered or running.
func TestQPFaults(t *testing.T) {
	cases := []struct {
		name   string
		access Access
		prep   func(p *qpPair) WR
		status Status
		want   string
	}{
		{"unknown rkey", RemoteWrite, func(p *qpPair) WR {
			return WR{ID: 9, Op: OpWrite, SGL: []SGE{{Buf: p.srcMem[:10], LKey: p.src.LKey}}, Remote: Remote{RKey: 0xdead}, Signaled: true}
		}, RemAccessErr, "names no region"},
		{"revoked rkey", RemoteWrite, func(p *qpPair) WR {
			p.region.Deregister()
			return WR{ID: 9, Op: OpWrite, SGL: []SGE{{Buf: p.srcMem[:10], LKey: p.src.LKey}}, Remote: Remote{RKey: p.region.RKey}, Signaled: true}
		}, RemAccessErr, "names no region"},
		{"out of bounds", RemoteWrite, func(p *qpPair) WR {
			return WR{ID: 9, Op: OpWrite, SGL: []SGE{{Buf: p.srcMem[:100], LKey: p.src.LKey}}, Remote: Remote{RKey: p.region.RKey, Offset: 1<<20 - 50}, Signaled: true}
		}, RemAccessErr, "outside its 1048576 bytes"},
		{"read not allowed", RemoteWrite, func(p *qpPair) WR {
			return WR{ID: 9, Op: OpRead, SGL: []SGE{{Buf: p.srcMem[:100], LKey: p.src.LKey}}, Remote: Remote{RKey: p.region.RKey}, Signaled: true}
		}, RemAccessErr, "does not allow remote read"},
		{"no receive posted", RemoteWrite, func(p *qpPair) WR {
			return WR{ID: 9, Op: OpWriteImm, SGL: []SGE{{Buf: p.srcMem[:100], LKey: p.src.LKey}}, Remote: Remote{RKey: p.region.RKey}, Signaled: true}
		}, RemInvReqErr, "no receive posted"},
		{"local buffer outside its region", RemoteWrite, func(p *qpPair) WR {
			return WR{ID: 9, Op: OpWrite, SGL: []SGE{{Buf: make([]byte, 10), LKey: p.src.LKey}}, Remote: Remote{RKey: p.region.RKey}, Signaled: true}
		}, LocalProtErr, "not inside the region"},
	}
	for _, tc := range cases {
		for _, mapped := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{false: "/tcp", true: "/mapped"}[mapped], func(t *testing.T) {
				before := runtime.NumGoroutine()
				p := newPair(t, 1<<20, tc.access, mapped)
				// A receive posted at the responder (except where its absence
				// is the fault) must come back flushed.
				if tc.status != RemInvReqErr {
					must(t, p.b.PostRecv(5))
				}
				must(t, p.a.Post(tc.prep(p)))
				c := poll(t, p.acq)
				if c.WRID != 9 || c.Status != tc.status || c.Err == nil || !strings.Contains(c.Err.Error(), tc.want) {
					t.Fatalf("requester completion %+v, want status %s and %q", c, tc.status, tc.want)
				}
				if err := p.a.Post(WR{ID: 10, Op: OpWrite, Remote: Remote{RKey: p.region.RKey}}); !errors.Is(err, ErrQPState) {
					t.Fatalf("a post on a QP in error: %v", err)
				}
				if tc.status != LocalProtErr {
					// The responder is in error too, with the same reason.
					deadline := time.Now().Add(5 * time.Second)
					for p.b.Err() == nil && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
					}
					if err := p.b.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
						t.Fatalf("responder error %v", err)
					}
					if tc.status != RemInvReqErr {
						if c := poll(t, p.bcq); c.WRID != 5 || c.Status != WRFlushErr {
							t.Fatalf("responder's receive %+v, want flushed", c)
						}
					}
				}
				p.close(t)
				checkGoroutines(t, before)
			})
		}
	}
}

// A peer that dies with WRITEs outstanding: they complete flushed with
// the reason, and the survivor's posts fail.
func TestQPPeerDies(t *testing.T) {
	before := runtime.NumGoroutine()
	p := newPair(t, 1<<20, RemoteWrite, false)
	// Stop the responder reading, queue WRITEs larger than the socket
	// buffers, then kill it.
	p.b.conn.(*net.TCPConn).SetReadBuffer(4096)
	done := make(chan error, 1)
	go func() {
		for i := range 64 {
			if err := p.a.Post(WR{ID: uint64(i), Op: OpWrite, SGL: []SGE{{Buf: p.srcMem, LKey: p.src.LKey}}, Remote: Remote{RKey: p.region.RKey}, Signaled: true}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	time.Sleep(20 * time.Millisecond)
	p.b.Close()
	<-done
	deadline := time.Now().Add(5 * time.Second)
	for p.a.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := p.a.Err(); err == nil || !strings.Contains(err.Error(), "peer") {
		t.Fatalf("requester error %v", err)
	}
	cs := make([]Completion, 128)
	n := p.acq.TryPoll(cs)
	failed := 0
	for _, c := range cs[:n] {
		if c.Status != Success {
			failed++
		}
	}
	if failed == 0 {
		t.Fatalf("no request completed in error (%d completions)", n)
	}
	p.close(t)
	checkGoroutines(t, before)
}

func TestParseWireNeverPanics(t *testing.T) {
	for _, b := range [][]byte{nil, make([]byte, 39), bytes.Repeat([]byte{0xff}, 40), append([]byte{6, 0, 0}, make([]byte, 37)...)} {
		if _, err := parseWire(b); err == nil {
			t.Fatalf("%x: no error", b)
		}
	}
}
