package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/io/netzc"
)

var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
	{Name: "i64", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "u32", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
	{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "dict", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, Nullable: true},
}, nil)

// makeBatch builds n rows starting at row base; every 7th row is null.
func makeBatch(mem memory.Allocator, base, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, testSchema)
	defer b.Release()
	for r := base; r < base+n; r++ {
		if r%7 == 3 {
			for _, f := range b.Fields() {
				f.AppendNull()
			}
			continue
		}
		b.Field(0).(*array.Int8Builder).Append(int8(r))
		b.Field(1).(*array.Int64Builder).Append(int64(r) * 1_000_003)
		b.Field(2).(*array.Uint32Builder).Append(uint32(r))
		b.Field(3).(*array.Float32Builder).Append(float32(r) / 4)
		b.Field(4).(*array.Float64Builder).Append(float64(r) / 3)
		b.Field(5).(*array.StringBuilder).Append(strings.Repeat("x", r%13) + fmt.Sprint(r))
		b.Field(6).(*array.BinaryBuilder).Append([]byte{byte(r), 0, byte(r >> 8)})
		b.Field(7).(*array.BooleanBuilder).Append(r%3 == 0)
		b.Field(8).(*array.TimestampBuilder).Append(arrow.Timestamp(int64(r) * 1e6))
		b.Field(9).(*array.Date32Builder).Append(arrow.Date32(r))
		if err := b.Field(10).(*array.BinaryDictionaryBuilder).AppendString(fmt.Sprint("k", r%5)); err != nil {
			panic(err)
		}
	}
	return b.NewRecordBatch()
}

func pair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := Dial(context.Background(), ln.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Accept(context.Background(), ln, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

// shape is a batch to send: rows [base, base+n) sliced to [lo, hi).
type shape struct{ base, n, lo, hi int }

var shapes = []shape{
	{0, 10, 0, 10}, {10, 1000, 0, 1000}, {1010, 0, 0, 0}, {1010, 100, 3, 97}, // sliced at an odd offset
	{1110, 5000, 1024, 5000}, {6110, 1, 0, 1}, {6111, 70000, 0, 70000},
}

func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines left, want %d:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestRoundTrip(t *testing.T) {
	modes := []netzc.Mode{netzc.Copy, netzc.Auto}
	if runtime.GOOS == "linux" {
		modes = append(modes, netzc.MsgZeroCopy)
	}
	for _, proto := range []string{ProtocolZflow, ProtocolArrow} {
		for _, mode := range modes {
			t.Run(proto+"/"+string(mode), func(t *testing.T) {
				before := runtime.NumGoroutine()
				smem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				rmem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer smem.AssertSize(t, 0)
				defer rmem.AssertSize(t, 0)
				c, s := pair(t)
				var wg sync.WaitGroup
				var got []arrow.RecordBatch
				var carriers [][CarrierSize]byte
				var rerr error
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := NewReceiver(context.Background(), s, RecvOptions{Protocol: proto, Alloc: rmem, Credit: 2})
					if err != nil {
						rerr = err
						return
					}
					defer r.Close()
					if !r.Schema().Equal(testSchema) {
						rerr = fmt.Errorf("schema %v", r.Schema())
						return
					}
					if err := r.Start(); err != nil {
						rerr = err
						return
					}
					for {
						rec, c, err := r.Next(context.Background())
						if err == io.EOF {
							return
						}
						if err != nil {
							rerr = err
							return
						}
						if err := array.ValidateRecordFull(rec); err != nil {
							rerr = err
						}
						got, carriers = append(got, rec), append(carriers, c)
						if err := r.Done(); err != nil {
							rerr = err
							return
						}
					}
				}()
				snd, err := NewSender(context.Background(), c, testSchema, SendOptions{Protocol: proto, Send: mode, Alloc: smem,
					ZeroCopy: netzc.Options{Threshold: 1024}})
				if err != nil {
					t.Fatal(err)
				}
				var want []arrow.RecordBatch
				for i, sh := range shapes {
					full := makeBatch(smem, sh.base, sh.n)
					rec := full.NewSlice(int64(sh.lo), int64(sh.hi))
					full.Release()
					var carrier [CarrierSize]byte
					if i%2 == 1 {
						carrier[1], carrier[17], carrier[25] = byte(i), 1, 1
					}
					if err := snd.Write(context.Background(), rec, carrier); err != nil {
						t.Fatal(err)
					}
					want = append(want, rec)
				}
				if err := snd.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				wg.Wait()
				if rerr != nil {
					t.Fatal(rerr)
				}
				if len(got) != len(want) {
					t.Fatalf("%d batches, want %d", len(got), len(want))
				}
				for i := range want {
					if !array.RecordEqual(got[i], want[i]) {
						t.Errorf("batch %d differs:\n got %v\nwant %v", i, got[i], want[i])
					}
					if proto == ProtocolZflow && i%2 == 1 && (carriers[i][1] != byte(i) || carriers[i][25] != 1) {
						t.Errorf("batch %d: carrier %x", i, carriers[i])
					}
					got[i].Release()
					want[i].Release()
				}
				st := snd.Stats()
				if st.Batches != int64(len(shapes)) || st.Net.Bytes != st.Bytes {
					t.Errorf("stats %+v", st)
				}
				if mode == netzc.MsgZeroCopy && st.Net.ZeroCopySends == 0 {
					t.Errorf("no zero-copy send: %+v", st.Net)
				}
				checkGoroutines(t, before)
			})
		}
	}
}

// TestBackpressure: a receiver that does not read leaves the zflow sender
// waiting for credit after Credit batches; the data it holds stays bounded.
func TestBackpressure(t *testing.T) {
	before := runtime.NumGoroutine()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c, s := pair(t)
	recvReady := make(chan *Receiver, 1)
	go func() {
		r, err := NewReceiver(context.Background(), s, RecvOptions{Alloc: mem, Credit: 3})
		if err != nil {
			t.Error(err)
			recvReady <- nil
			return
		}
		r.Start()
		recvReady <- r
	}()
	snd, err := NewSender(context.Background(), c, testSchema, SendOptions{Alloc: mem, Send: netzc.Copy})
	if err != nil {
		t.Fatal(err)
	}
	r := <-recvReady
	rec := makeBatch(mem, 0, 10)
	defer rec.Release()
	for i := 0; i < 3; i++ {
		if err := snd.Write(context.Background(), rec, [CarrierSize]byte{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err = snd.Write(ctx, rec, [CarrierSize]byte{})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("4th write without credit: %v, want to wait until the deadline", err)
	}
	// The receiver takes one and grants one: the sender goes on.
	b, _, err := r.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	r.Done()
	if err := snd.Write(context.Background(), rec, [CarrierSize]byte{}); err != nil {
		t.Fatal(err)
	}
	snd.Abort(errors.New("test over"))
	r.Close()
	checkGoroutines(t, before)
}

// TestErrors: each side's failure reaches the other with its message; a cut
// connection is named as such.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, proto   string
		receiverFails bool
		senderAborts  bool
		cut           bool
		wantRecv      string
		wantSend      string
	}{
		{name: "sender error frame", proto: ProtocolZflow, senderAborts: true, wantRecv: "the sender at .* failed: disk on fire"},
		{name: "receiver error frame", proto: ProtocolZflow, receiverFails: true, wantSend: "the receiver at .* refused the stream: schema mismatch"},
		{name: "zflow cut", proto: ProtocolZflow, cut: true, wantRecv: "closed after batch 2 of a stream that did not end"},
		{name: "arrow cut", proto: ProtocolArrow, cut: true, wantRecv: "closed after batch 2 of a stream that did not end"},
		{name: "arrow sender abort", proto: ProtocolArrow, senderAborts: true, wantRecv: "closed after batch 2 of a stream that did not end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			c, s := pair(t)
			recvErr := make(chan error, 1)
			go func() {
				r, err := NewReceiver(context.Background(), s, RecvOptions{Protocol: tc.proto, Alloc: mem})
				if err != nil {
					recvErr <- err
					return
				}
				if tc.receiverFails {
					r.Fail(errors.New("schema mismatch"))
					recvErr <- nil
					return
				}
				r.Start()
				for {
					b, _, err := r.Next(context.Background())
					if err != nil {
						r.Close() // before the test checks the allocator
						recvErr <- err
						return
					}
					b.Release()
					r.Done()
				}
			}()
			snd, err := NewSender(context.Background(), c, testSchema, SendOptions{Protocol: tc.proto, Alloc: mem})
			if tc.receiverFails {
				if err == nil {
					t.Fatal("the sender did not see the receiver's error")
				}
				match(t, err, tc.wantSend)
				<-recvErr
				checkGoroutines(t, before)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rec := makeBatch(mem, 0, 100)
			for i := 0; i < 2; i++ {
				if err := snd.Write(context.Background(), rec, [CarrierSize]byte{}); err != nil {
					t.Fatal(err)
				}
			}
			rec.Release()
			switch {
			case tc.senderAborts:
				snd.Abort(errors.New("disk on fire"))
			case tc.cut:
				c.Close() // under the sender: no end frame, no error frame
				snd.Abort(nil)
			}
			match(t, <-recvErr, tc.wantRecv)
			checkGoroutines(t, before)
		})
	}
}

func match(t *testing.T, err error, re string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", re)
	}
	if !regexpMatch(re, err.Error()) {
		t.Fatalf("error %q, want %q", err, re)
	}
}
