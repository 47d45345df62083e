//go:build linux

package rdma

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/io/stream"
)

var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "px", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "sym", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func makeBatch(mem memory.Allocator, base, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, testSchema)
	defer b.Release()
	for r := base; r < base+n; r++ {
		b.Field(0).(*array.Int64Builder).Append(int64(r))
		if r%5 == 2 {
			b.Field(1).AppendNull()
			b.Field(2).AppendNull()
			continue
		}
		b.Field(1).(*array.Float64Builder).Append(float64(r) / 8)
		b.Field(2).(*array.StringBuilder).Append(strings.Repeat("s", r%9) + fmt.Sprint(r))
	}
	return b.NewRecordBatch()
}

type ends struct {
	snd *Sender
	rcv *Receiver
}

func connect(t *testing.T, mem memory.Allocator, ropts RecvOptions, sopts SendOptions) ends {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type res struct {
		r   *Receiver
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := Accept(context.Background(), l.(*net.TCPListener), 10*time.Second)
		if err != nil {
			ch <- res{err: err}
			return
		}
		r, err := NewReceiver(context.Background(), c, ropts)
		ch <- res{r, err}
	}()
	sopts.Alloc = mem
	s, err := Dial(context.Background(), l.Addr().String(), 5*time.Second, testSchema, sopts)
	if err != nil {
		t.Fatal(err)
	}
	rr := <-ch
	if rr.err != nil {
		t.Fatal(rr.err)
	}
	return ends{s, rr.r}
}

// receiveAll reads the stream to its end, checking each batch against
// what makeBatch made, and releases every batch.
func receiveAll(t *testing.T, r *Receiver, batchRows int) (int, error) {
	rows := 0
	for {
		rec, _, err := r.Next(context.Background())
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		want := makeBatch(memory.NewGoAllocator(), rows, int(rec.NumRows()))
		if !array.RecordEqual(rec, want) {
			t.Errorf("batch at row %d differs", rows)
		}
		for _, c := range rec.Columns() {
			for _, b := range c.Data().Buffers() {
				if b != nil && b.Len() > 0 && !r.Contains(b.Bytes()) {
					t.Errorf("batch at row %d: a buffer outside the receive region", rows)
				}
			}
		}
		want.Release()
		rows += int(rec.NumRows())
		rec.Release()
	}
}

func TestStream(t *testing.T) {
	arena, err := buffers.New(buffers.ArenaConfig{Kind: buffers.KindPlain, ExtentSize: 8 << 20, QuietFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer arena.Close()
	for _, tc := range []struct {
		name  string
		arena bool
		noMap bool
	}{{"mapped, arena", true, false}, {"mapped, heap", false, false}, {"tcp, arena", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			var mem memory.Allocator = memory.NewCheckedAllocator(memory.NewGoAllocator())
			if tc.arena {
				mem = arena.For("sender")
			}
			// A small window: the sender wraps around the ring and waits
			// for credit many times.
			e := connect(t, mem, RecvOptions{Window: 1 << 20, Recvs: 8}, SendOptions{NoMap: tc.noMap})
			if m, why := e.snd.Mapped(); m == tc.noMap {
				t.Fatalf("mapped %v: %s", m, why)
			}
			const batches, per = 200, 1000
			done := make(chan error, 1)
			go func() {
				for i := range batches {
					rec := makeBatch(mem, i*per, per)
					err := e.snd.Write(context.Background(), rec, [stream.CarrierSize]byte{})
					rec.Release()
					if err != nil {
						done <- err
						return
					}
				}
				done <- e.snd.Close(context.Background())
			}()
			rows, err := receiveAll(t, e.rcv, per)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			e.rcv.Close()
			if rows != batches*per {
				t.Fatalf("%d rows, want %d", rows, batches*per)
			}
			ss, rs := e.snd.Stats(), e.rcv.Stats()
			if ss.Batches != batches || rs.Batches != batches || ss.Bytes != rs.Bytes {
				t.Fatalf("sender %+v, receiver %+v", ss, rs)
			}
			if tc.noMap && (rs.Received < rs.Bytes || ss.Placed != 0) || !tc.noMap && (rs.Received != 0 || ss.Placed < ss.Bytes) {
				t.Fatalf("sender %+v, receiver %+v", ss, rs)
			}
			if tc.arena && ss.Staged != 0 || !tc.arena && ss.Staged == 0 {
				t.Fatalf("staged %d bytes", ss.Staged)
			}
			if n := e.snd.Registered() + e.rcv.Registered(); n != 0 {
				t.Fatalf("%d regions left registered", n)
			}
			if c, ok := mem.(*memory.CheckedAllocator); ok {
				c.AssertSize(t, 0)
			}
			checkGoroutines(t, before)
		})
	}
	if n := arena.InUse(); n != 0 {
		t.Fatalf("%d arena bytes in use", n)
	}
}

// Batches held downstream keep the region mapped after the stream ends.
func TestStreamHeldBatches(t *testing.T) {
	before := runtime.NumGoroutine()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	e := connect(t, mem, RecvOptions{Window: 4 << 20}, SendOptions{})
	go func() {
		for i := range 3 {
			rec := makeBatch(mem, i*10, 10)
			e.snd.Write(context.Background(), rec, [stream.CarrierSize]byte{})
			rec.Release()
		}
		e.snd.Close(context.Background())
	}()
	var held []arrow.RecordBatch
	for {
		rec, _, err := e.rcv.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, rec)
	}
	e.rcv.Close()
	if e.rcv.Registered() != 1 {
		t.Fatalf("%d regions registered while batches are held", e.rcv.Registered())
	}
	for i, rec := range held {
		want := makeBatch(memory.NewGoAllocator(), i*10, 10)
		if !array.RecordEqual(rec, want) {
			t.Fatalf("held batch %d changed", i)
		}
		want.Release()
		rec.Release()
	}
	if e.rcv.Registered() != 0 {
		t.Fatal("the region outlived its batches")
	}
	mem.AssertSize(t, 0)
	checkGoroutines(t, before)
}

// Either end failing or dying mid-stream gives the other a clear error.
func TestStreamFailures(t *testing.T) {
	t.Run("sender aborts", func(t *testing.T) {
		before := runtime.NumGoroutine()
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		e := connect(t, mem, RecvOptions{}, SendOptions{})
		rec := makeBatch(mem, 0, 10)
		must(t, e.snd.Write(context.Background(), rec, [stream.CarrierSize]byte{}))
		rec.Release()
		e.snd.Abort(errors.New("the source file is truncated"))
		_, err := receiveAll(t, e.rcv, 10)
		if err == nil || !strings.Contains(err.Error(), "the source file is truncated") {
			t.Fatalf("receiver: %v", err)
		}
		e.rcv.Close()
		mem.AssertSize(t, 0)
		checkGoroutines(t, before)
	})
	t.Run("sender dies", func(t *testing.T) {
		before := runtime.NumGoroutine()
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		e := connect(t, mem, RecvOptions{}, SendOptions{})
		rec := makeBatch(mem, 0, 10)
		must(t, e.snd.Write(context.Background(), rec, [stream.CarrierSize]byte{}))
		rec.Release()
		e.snd.Abort(nil) // as a killed process: the connections just end
		_, err := receiveAll(t, e.rcv, 10)
		if err == nil || !strings.Contains(err.Error(), "did not end") {
			t.Fatalf("receiver: %v", err)
		}
		e.rcv.Close()
		mem.AssertSize(t, 0)
		checkGoroutines(t, before)
	})
	t.Run("receiver fails", func(t *testing.T) {
		before := runtime.NumGoroutine()
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		e := connect(t, mem, RecvOptions{Window: 1 << 20, Recvs: 2}, SendOptions{})
		e.rcv.Fail(errors.New("disk full downstream"))
		var err error
		for i := 0; i < 100 && err == nil; i++ {
			rec := makeBatch(mem, i*100, 100)
			err = e.snd.Write(context.Background(), rec, [stream.CarrierSize]byte{})
			rec.Release()
		}
		if err == nil {
			err = e.snd.Close(context.Background())
		} else {
			e.snd.Abort(nil)
		}
		if err == nil || !strings.Contains(err.Error(), "disk full downstream") {
			t.Fatalf("sender: %v", err)
		}
		if n := e.snd.Registered() + e.rcv.Registered(); n != 0 {
			t.Fatalf("%d regions left registered", n)
		}
		mem.AssertSize(t, 0)
		checkGoroutines(t, before)
	})
	t.Run("batch larger than the window", func(t *testing.T) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		e := connect(t, mem, RecvOptions{Window: 1 << 20}, SendOptions{})
		rec := makeBatch(mem, 0, 100000)
		err := e.snd.Write(context.Background(), rec, [stream.CarrierSize]byte{})
		rec.Release()
		if err == nil || !strings.Contains(err.Error(), "more than half the receiver's region") {
			t.Fatalf("sender: %v", err)
		}
		e.snd.Abort(err)
		e.rcv.Close()
		mem.AssertSize(t, 0)
	})
}

// A pipeline that keeps every batch until the end (a sort, a join's build
// side) must not stall the sender on receives it has reposted, and spans
// of mixed sizes must find room after wrapping: both hung once.
func TestStreamRetainedAndWrapping(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window int
		recvs  int
		sizes  []int // rows per batch, in turn
		n      int
		hold   bool
	}{
		{"held past the receives", 4 << 20, 8, []int{100}, 40, true},
		{"mixed sizes wrapping", 1 << 20, 16, []int{11000, 18000, 3000}, 30, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			e := connect(t, mem, RecvOptions{Window: tc.window, Recvs: tc.recvs}, SendOptions{})
			done := make(chan error, 1)
			go func() {
				row := 0
				for i := range tc.n {
					k := tc.sizes[i%len(tc.sizes)]
					rec := makeBatch(mem, row, k)
					row += k
					err := e.snd.Write(context.Background(), rec, [stream.CarrierSize]byte{})
					rec.Release()
					if err != nil {
						done <- err
						return
					}
				}
				done <- e.snd.Close(context.Background())
			}()
			var held []arrow.RecordBatch
			rows := 0
			timeout := time.AfterFunc(30*time.Second, func() { e.rcv.Fail(errors.New("the test timed out: the stream hung")) })
			defer timeout.Stop()
			for {
				rec, _, err := e.rcv.Next(context.Background())
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				want := makeBatch(memory.NewGoAllocator(), rows, int(rec.NumRows()))
				if !array.RecordEqual(rec, want) {
					t.Fatalf("batch at row %d differs", rows)
				}
				want.Release()
				rows += int(rec.NumRows())
				if tc.hold {
					held = append(held, rec)
				} else {
					rec.Release()
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			e.rcv.Close()
			for _, r := range held {
				r.Release()
			}
			if n := e.snd.Registered() + e.rcv.Registered(); n != 0 {
				t.Fatalf("%d regions left registered", n)
			}
			mem.AssertSize(t, 0)
			checkGoroutines(t, before)
		})
	}
}
