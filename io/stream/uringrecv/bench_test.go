//go:build linux

package uringrecv

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/io/netzc"
	"github.com/zflowdev/zflow/io/stream"
)

var benchSchema = arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)

// BenchmarkRecv receives a zflow stream of one-column batches on loopback
// with read(2) and with uring_multishot, into a zflow arena, in the same
// run: bytes/s per receive path, and for uring_multishot the share of body
// bytes copied because they crossed a buffer's end (split). The sender
// writes with writev from one batch sent again and again, credit 8; the
// first 256 MiB (at least 32 batches) are not timed.
//
//	go test -ldflags=-checklinkname=0 -run '^$' -bench BenchmarkRecv ./io/stream/uringrecv/
func BenchmarkRecv(b *testing.B) {
	inc := needMultishot(b)
	alloc, err := buffers.New(buffers.ArenaConfig{ExtentSize: 64 << 20, QuietFallback: true})
	if err != nil {
		b.Skipf("no arena here: %v", err)
	}
	defer alloc.Close()
	cases := []recvCase{
		{"read", stream.RecvRead, stream.WireOptions{}},
		{"uring_multishot", stream.RecvUringMultishot, stream.WireOptions{}},
	}
	if inc {
		cases = append(cases, recvCase{"uring_multishot_flat", stream.RecvUringMultishot, stream.WireOptions{Incremental: -1}})
	}
	for _, body := range []int{64 << 10, 1 << 20, 8 << 20} {
		for _, rc := range cases {
			b.Run(fmt.Sprintf("recv=%s/body=%dKiB", rc.name, body>>10), func(b *testing.B) {
				benchRecv(b, rc, body, alloc)
			})
		}
	}
}

func benchRecv(b *testing.B, rc recvCase, body int, mem memory.Allocator) {
	warm := max(32, (256<<20)/body) // batches received before the timer starts
	c, s := pair(b)
	bld := array.NewInt64Builder(mem)
	for i := range body / 8 {
		bld.Append(int64(i))
	}
	col := bld.NewArray()
	bld.Release()
	rec := array.NewRecordBatch(benchSchema, []arrow.Array{col}, int64(col.Len()))
	col.Release()
	defer rec.Release()
	errc := make(chan error, 1)
	go func() {
		snd, err := stream.NewSender(context.Background(), c, benchSchema, stream.SendOptions{Send: netzc.Copy, Alloc: mem})
		if err != nil {
			errc <- err
			return
		}
		for range warm + b.N {
			if err := snd.Write(context.Background(), rec, [stream.CarrierSize]byte{}); err != nil {
				snd.Abort(err)
				errc <- err
				return
			}
		}
		errc <- snd.Close(context.Background())
	}()
	r, err := stream.NewReceiver(context.Background(), s, stream.RecvOptions{Alloc: mem, Credit: 8, Recv: rc.mode, Wire: rc.wire})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Start(); err != nil {
		b.Fatal(err)
	}
	// Warm up before timing: the provided buffers (and the read path's
	// arena blocks) are faulted in once, as in a long stream.
	for range warm {
		got, _, err := r.Next(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		got.Release()
		if err := r.Done(); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(body))
	b.ReportAllocs()
	b.ResetTimer()
	for {
		got, _, err := r.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		got.Release()
		if err := r.Done(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := r.Stats().Wire
	if err := r.Close(); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	if st.BodyBytes > 0 && rc.mode == stream.RecvUringMultishot {
		b.ReportMetric(float64(st.SplitBytes+st.MisalignedBytes)/float64(st.BodyBytes), "copied/body")
	}
}
