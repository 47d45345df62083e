//go:build linux

package uringzc

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/io/netzc"
	"github.com/zflowdev/zflow/io/stream"
)

var streamSchema = arrow.NewSchema([]arrow.Field{
	{Name: "i", Type: arrow.PrimitiveTypes.Int64},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

// batch makes n rows starting at base.
func batch(mem memory.Allocator, base, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, streamSchema)
	defer b.Release()
	for r := base; r < base+n; r++ {
		b.Field(0).(*array.Int64Builder).Append(int64(r))
		if r%5 == 0 {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append("row")
		}
	}
	return b.NewRecordBatch()
}

// TestStream sends batches with uring_zc through io/stream in both
// protocols: the rows arrive, every buffer goes back (the sender's only
// after its notifications), every byte is counted copied on loopback.
func TestStream(t *testing.T) {
	needZC(t)
	for _, proto := range []string{stream.ProtocolZflow, stream.ProtocolArrow} {
		t.Run(proto, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			smem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			rmem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer smem.AssertSize(t, 0)
			defer rmem.AssertSize(t, 0)
			c, s := pair(t)
			rows := make(chan int64, 1)
			go func() {
				n := int64(-1)
				defer func() { rows <- n }()
				r, err := stream.NewReceiver(context.Background(), s, stream.RecvOptions{Protocol: proto, Alloc: rmem, Credit: 2})
				if err != nil {
					t.Error(err)
					return
				}
				defer r.Close()
				if err := r.Start(); err != nil {
					t.Error(err)
					return
				}
				n = 0
				for {
					rec, _, err := r.Next(context.Background())
					if err == io.EOF {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					if got := rec.Column(0).(*array.Int64).Value(0); got != n {
						t.Errorf("batch starts at row %d, want %d", got, n)
					}
					n += rec.NumRows()
					rec.Release()
					r.Done()
				}
			}()
			snd, err := stream.NewSender(context.Background(), c, streamSchema, stream.SendOptions{Protocol: proto, Send: netzc.UringZC, Alloc: smem})
			if err != nil {
				t.Fatal(err)
			}
			if snd.Mode() != netzc.UringZC {
				t.Fatalf("mode %s", snd.Mode())
			}
			const per, batches = 50000, 8
			for i := 0; i < batches; i++ {
				rec := batch(smem, i*per, per)
				if err := snd.Write(context.Background(), rec, [stream.CarrierSize]byte{}); err != nil {
					t.Fatal(err)
				}
				rec.Release()
			}
			if err := snd.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := <-rows; n != per*batches {
				t.Errorf("received %d rows, want %d", n, per*batches)
			}
			st := snd.Stats().Net
			if st.ZeroCopySends == 0 || st.Completions != st.ZeroCopySends || st.CopiedBytes != st.Bytes || st.ZeroCopyBytes != 0 {
				t.Errorf("loopback stats %+v: want every zero-copy byte notified copied", st)
			}
		})
	}
}

// TestStreamCancel: a run cancelled while its receiver stalls (credit
// held, nothing read, the socket full) aborts the stream: the error
// frame's send is bounded by the write deadline, the connection is reset,
// and every buffer comes back after its notification; no goroutine and no
// request is left.
func TestStreamCancel(t *testing.T) {
	needZC(t)
	defer goleak.VerifyNone(t)
	smem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	rmem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer smem.AssertSize(t, 0)
	defer rmem.AssertSize(t, 0)
	c, s := pair(t)
	stalled := make(chan *stream.Receiver, 1)
	go func() {
		r, err := stream.NewReceiver(context.Background(), s, stream.RecvOptions{Alloc: rmem, Credit: 4})
		if err != nil {
			t.Error(err)
			stalled <- nil
			return
		}
		r.Start()
		stalled <- r // and never reads
	}()
	snd, err := stream.NewSender(context.Background(), c, streamSchema, stream.SendOptions{Send: netzc.UringZC, Alloc: smem})
	if err != nil {
		t.Fatal(err)
	}
	r := <-stalled
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		rec := batch(smem, i*200000, 200000) // about 2.6 MB
		werr = snd.Write(ctx, rec, [stream.CarrierSize]byte{})
		rec.Release()
	}
	if !errors.Is(werr, context.DeadlineExceeded) {
		t.Fatalf("writes to a stalled receiver: %v, want the run's deadline", werr)
	}
	snd.Abort(werr) // returns once every notification is in: a hang fails the test by its timeout
	if r != nil {
		r.Close()
	}
}
