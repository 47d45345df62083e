//go:build linux

package uringrecv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/io/netzc"
	"github.com/zflowdev/zflow/io/stream"
	"github.com/zflowdev/zflow/io/uring"
)

var schema = arrow.NewSchema([]arrow.Field{
	{Name: "i", Type: arrow.PrimitiveTypes.Int64},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
}, nil)

// batch makes n rows starting at base.
func batch(mem memory.Allocator, base, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for r := base; r < base+n; r++ {
		b.Field(0).(*array.Int64Builder).Append(int64(r) * 7919)
		if r%5 == 0 {
			b.Field(1).AppendNull()
			b.Field(2).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append(strings.Repeat("v", r%11) + fmt.Sprint(r))
			b.Field(2).(*array.BooleanBuilder).Append(r%3 == 0)
		}
	}
	return b.NewRecordBatch()
}

func pair(t testing.TB) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := stream.Dial(context.Background(), ln.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s, err := stream.Accept(context.Background(), ln, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func needMultishot(t testing.TB) bool {
	t.Helper()
	inc, err := uring.RecvMultishotSupport()
	if err != nil {
		t.Skipf("no multishot receive here: %v", err)
	}
	return inc
}

// recvCase is one way to receive.
type recvCase struct {
	name string
	mode stream.RecvMode
	wire stream.WireOptions
}

func recvCases(inc bool) []recvCase {
	cs := []recvCase{
		{"read", stream.RecvRead, stream.WireOptions{}},
		{"uring_multishot", stream.RecvUringMultishot, stream.WireOptions{}},
		// Small buffers: most bodies cross a buffer's end and are copied.
		{"uring_multishot/buf=64KiB", stream.RecvUringMultishot, stream.WireOptions{BufSize: 64 << 10}},
		// One buffer per completion, as on kernels before 6.12.
		{"uring_multishot/flat", stream.RecvUringMultishot, stream.WireOptions{Incremental: -1}},
	}
	if !inc {
		cs = cs[:2]
	}
	return cs
}

// sizes are the batches sent: small ones share a buffer, the large ones
// (a body of a few MiB) cross buffers.
var sizes = []int{10, 1000, 0, 1, 5000, 70000, 3, 250000, 17, 100}

// TestRoundTrip sends batches in both protocols and receives them with
// each receive path, holding every batch to the end (no buffer may be
// reused under it) or releasing each at once (buffers recycle under
// traffic); the rows arrive equal, bodies are referenced in provided
// buffers where they landed whole, and every buffer goes back.
func TestRoundTrip(t *testing.T) {
	inc := needMultishot(t)
	for _, proto := range []string{stream.ProtocolZflow, stream.ProtocolArrow} {
		for _, rc := range recvCases(inc) {
			for _, hold := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/%s/hold=%v", proto, rc.name, hold), func(t *testing.T) {
					defer goleak.VerifyNone(t)
					smem := memory.NewCheckedAllocator(memory.NewGoAllocator())
					rmem := memory.NewCheckedAllocator(memory.NewGoAllocator())
					defer smem.AssertSize(t, 0)
					defer rmem.AssertSize(t, 0)
					st := roundTrip(t, proto, rc, hold, smem, rmem)
					if rc.mode == stream.RecvUringMultishot {
						if st.Wire.Buffers == 0 || st.Wire.Bytes == 0 {
							t.Errorf("wire stats %+v: no provided buffer used", st.Wire)
						}
						if rc.wire.BufSize == 0 && rc.wire.Incremental == 0 && st.Wire.RefBytes == 0 {
							t.Errorf("wire stats %+v: no body referenced in place", st.Wire)
						}
						if got := st.Wire.RefBytes + st.Wire.SplitBytes + st.Wire.MisalignedBytes; got != st.Wire.BodyBytes {
							t.Errorf("wire stats %+v: referenced, split and misaligned bytes add up to %d, bodies hold %d", st.Wire, got, st.Wire.BodyBytes)
						}
						t.Logf("%+v", st.Wire)
					}
				})
			}
		}
	}
}

func roundTrip(t *testing.T, proto string, rc recvCase, hold bool, smem, rmem memory.Allocator) stream.RecvStats {
	c, s := pair(t)
	type result struct {
		st  stream.RecvStats
		err error
	}
	done := make(chan result, 1)
	wantc := make(chan arrow.RecordBatch, len(sizes))
	go func() {
		var res result
		defer func() { done <- res }()
		r, err := stream.NewReceiver(context.Background(), s, stream.RecvOptions{Protocol: proto, Alloc: rmem, Credit: 3, Recv: rc.mode, Wire: rc.wire})
		if err != nil {
			res.err = err
			return
		}
		defer func() {
			if err := r.Close(); err != nil && res.err == nil {
				res.err = err
			}
			res.st = r.Stats()
		}()
		if err := r.Start(); err != nil {
			res.err = err
			return
		}
		if r.RecvMode() != rc.mode || r.RecvReason() == "" {
			res.err = fmt.Errorf("receive mode %s (%s), want %s", r.RecvMode(), r.RecvReason(), rc.mode)
			return
		}
		var held []arrow.RecordBatch
		defer func() {
			for _, b := range held {
				b.Release()
			}
		}()
		for i := 0; ; i++ {
			rec, _, err := r.Next(context.Background())
			if err == io.EOF {
				if i != len(sizes) {
					res.err = fmt.Errorf("%d batches, want %d", i, len(sizes))
				}
				return
			}
			if err != nil {
				res.err = err
				return
			}
			want := <-wantc
			if err := array.ValidateRecordFull(rec); err != nil {
				res.err = fmt.Errorf("batch %d: %w", i, err)
			} else if !array.RecordEqual(rec, want) {
				res.err = fmt.Errorf("batch %d differs", i)
			}
			if hold {
				held = append(held, rec, want)
			} else {
				rec.Release()
				want.Release()
			}
			if res.err != nil {
				return
			}
			if err := r.Done(); err != nil {
				res.err = err
				return
			}
		}
	}()
	snd, err := stream.NewSender(context.Background(), c, schema, stream.SendOptions{Protocol: proto, Send: netzc.Copy, Alloc: smem})
	if err != nil {
		t.Fatal(err)
	}
	base := 0
	for _, n := range sizes {
		rec := batch(smem, base, n)
		base += n
		rec.Retain()
		wantc <- rec
		if err := snd.Write(context.Background(), rec, [stream.CarrierSize]byte{}); err != nil {
			rec.Release()
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := snd.Close(context.Background()); err != nil {
		t.Error(err)
	}
	res := <-done
	close(wantc)
	for b := range wantc {
		b.Release()
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	return res.st
}

// TestBadStreams: what a receiver on either path says when the bytes after
// the handshake are malformed or the sender is cut off mid-message, and
// that it leaves nothing in flight and every buffer returned.
func TestBadStreams(t *testing.T) {
	inc := needMultishot(t)
	bad := make([]byte, stream.HeaderSize+16)
	(&stream.Header{Type: stream.FrameBatch, Seq: 2, Length: 16}).Put(bad)
	bad[3] = 9 // a reserved byte
	past := make([]byte, stream.HeaderSize+16)
	(&stream.Header{Type: stream.FrameBatch, Seq: 2, Length: 16}).Put(past)
	copy(past[stream.HeaderSize:], []byte{0xff, 0xff, 0xff, 0xff, 0x40, 0, 0, 0}) // metadata of 64 bytes in a 16-byte frame
	for _, tc := range []struct {
		name, proto string
		raw         []byte // written after one good batch
		cut         int    // bytes of a second good batch written before the connection is reset
		want        string
	}{
		{name: "reserved byte", proto: stream.ProtocolZflow, raw: bad, want: `malformed frame: batch frame: reserved byte 3`},
		{name: "message past its frame", proto: stream.ProtocolZflow, raw: past, want: `malformed frame: batch frame 2: the IPC message runs past the frame`},
		{name: "huge metadata", proto: stream.ProtocolArrow, raw: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, want: `message metadata of \d+ bytes, more than the limit`},
		{name: "zflow cut mid-body", proto: stream.ProtocolZflow, cut: 5000, want: `closed after batch 1 of a stream that did not end`},
		{name: "arrow cut mid-body", proto: stream.ProtocolArrow, cut: 5000, want: `closed after batch 1 of a stream that did not end`},
	} {
		for _, rc := range recvCases(inc) {
			t.Run(tc.name+"/"+rc.name, func(t *testing.T) {
				defer goleak.VerifyNone(t)
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				c, s := pair(t)
				errc := make(chan error, 1)
				go func() {
					errc <- drain(s, tc.proto, rc, mem)
				}()
				snd, err := stream.NewSender(context.Background(), c, schema, stream.SendOptions{Protocol: tc.proto, Send: netzc.Copy, Alloc: mem})
				if err != nil {
					t.Fatal(err)
				}
				rec := batch(mem, 0, 1000)
				if err := snd.Write(context.Background(), rec, [stream.CarrierSize]byte{}); err != nil {
					t.Fatal(err)
				}
				if tc.raw != nil {
					c.Write(tc.raw)
				}
				if tc.cut > 0 {
					// The second batch's first bytes, as a sender killed
					// mid-message leaves them: the receiver sees them,
					// then the reset.
					full := encoded(t, tc.proto, rec)
					if tc.proto == stream.ProtocolZflow {
						full[8] = 2 // the second batch frame
					}
					c.Write(full[:tc.cut])
					c.SetLinger(0)
					c.Close() // under the sender
				}
				rec.Release()
				err = <-errc
				snd.Abort(nil)
				if err == nil || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
			})
		}
	}
}

// drain receives until an error, releasing every batch.
func drain(s *net.TCPConn, proto string, rc recvCase, mem memory.Allocator) error {
	r, err := stream.NewReceiver(context.Background(), s, stream.RecvOptions{Protocol: proto, Alloc: mem, Recv: rc.mode, Wire: rc.wire})
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Start(); err != nil {
		return err
	}
	for {
		rec, _, err := r.Next(context.Background())
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		rec.Release()
		if err := r.Done(); err != nil {
			return err
		}
	}
}

// encoded is the bytes of rec's batch message as the sender puts them on
// the wire after the handshake (zflow: frame 2; arrow: the message).
func encoded(t *testing.T, proto string, rec arrow.RecordBatch) []byte {
	c, s := pair(t)
	defer s.Close()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(s)
		got <- b
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if proto == stream.ProtocolZflow {
			// Play the receiver's half of the handshake so the sender
			// goes on.
			hello := make([]byte, stream.HeaderSize+16)
			(&stream.Header{Type: stream.FrameHello, Length: 16}).Put(hello)
			copy(hello[stream.HeaderSize:], stream.Magic)
			hello[stream.HeaderSize+8] = stream.Version
			credit := make([]byte, stream.HeaderSize)
			(&stream.Header{Type: stream.FrameCredit, Seq: 4}).Put(credit)
			s.Write(append(hello, credit...))
		}
	}()
	mem := memory.NewGoAllocator()
	snd, err := stream.NewSender(context.Background(), c, schema, stream.SendOptions{Protocol: proto, Send: netzc.Copy, Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if err := snd.Write(context.Background(), rec, [stream.CarrierSize]byte{}); err != nil {
		t.Fatal(err)
	}
	snd.Abort(nil)
	all := <-got
	// Skip what precedes the batch: for zflow hello and schema frames,
	// for arrow the schema message.
	off := 0
	if proto == stream.ProtocolZflow {
		for i := 0; i < 2; i++ {
			h, err := stream.ParseHeader(all[off:], 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			off += stream.HeaderSize + int(h.Length)
		}
	} else {
		n := int(uint32(all[4]) | uint32(all[5])<<8 | uint32(all[6])<<16 | uint32(all[7])<<24)
		off = 8 + n
	}
	if len(all)-off < 5000 {
		t.Fatalf("the batch took %d bytes, want more than 5000", len(all)-off)
	}
	return all[off:]
}

// TestCancel cancels a receive blocked on a silent sender: Next returns
// the context's error at once, Close ends the multishot request (nothing
// left in flight), and every buffer goes back to the pool — those batches
// still hold included, once they are released.
func TestCancel(t *testing.T) {
	inc := needMultishot(t)
	for _, rc := range recvCases(inc)[1:] {
		t.Run(rc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			c, s := pair(t)
			defer c.Close()
			type got struct {
				r   *stream.Receiver
				rec arrow.RecordBatch
				err error
			}
			ready := make(chan got, 1)
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				r, err := stream.NewReceiver(context.Background(), s, stream.RecvOptions{Alloc: mem, Recv: rc.mode, Wire: rc.wire})
				if err != nil {
					ready <- got{err: err}
					return
				}
				if err := r.Start(); err != nil {
					ready <- got{err: err}
					return
				}
				rec, _, err := r.Next(context.Background())
				ready <- got{r: r, rec: rec, err: err}
				_, _, err = r.Next(ctx) // blocks: the sender sends no more
				errc <- err
			}()
			snd, err := stream.NewSender(context.Background(), c, schema, stream.SendOptions{Send: netzc.Copy, Alloc: mem})
			if err != nil {
				t.Fatal(err)
			}
			rec := batch(mem, 0, 2000)
			if err := snd.Write(context.Background(), rec, [stream.CarrierSize]byte{}); err != nil {
				t.Fatal(err)
			}
			rec.Release()
			g := <-ready
			if g.err != nil {
				t.Fatal(g.err)
			}
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("Next after cancel: %v", err)
			}
			if err := g.r.Close(); err != nil {
				t.Fatal(err)
			}
			// The batch outlives the receiver; its buffer goes back to
			// the pool when it is released (AssertSize above).
			if err := array.ValidateRecordFull(g.rec); err != nil {
				t.Fatal(err)
			}
			g.rec.Release()
			snd.Abort(nil)
		})
	}
}
