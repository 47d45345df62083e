//go:build linux

package uringzc

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/io/netzc"
)

// BenchmarkSend compares the send paths on loopback for one message of
// each size, sent as 16 buffers (as a batch's body is): copy,
// msg_zerocopy and uring_zc in the same run. Loopback copies every
// zero-copy send, so this measures the paths' overheads, not what zero
// copy saves on a NIC.
func BenchmarkSend(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20, 4 << 20} {
		msg := make([]byte, size)
		bufs := make([][]byte, 16)
		for i := range bufs {
			bufs[i] = msg[i*size/16 : (i+1)*size/16]
		}
		for _, mode := range []netzc.Mode{netzc.Copy, netzc.MsgZeroCopy, netzc.UringZC} {
			b.Run(fmt.Sprintf("size=%dKiB/send=%s", size>>10, mode), func(b *testing.B) {
				if mode == netzc.UringZC {
					needZC(b)
				}
				c, s := pair(b)
				done := discard(s)
				snd, err := netzc.New(c, mode, netzc.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if err := snd.Send(bufs, nil); err != nil {
						b.Fatal(err)
					}
				}
				if err := snd.Close(context.Background(), false); err != nil {
					b.Fatal(err)
				}
				<-done
			})
		}
	}
}

// BenchmarkSendRegistered compares uring_zc with the message's buffers in
// registered arena memory (IORING_RECVSEND_FIXED_BUF) against the same
// sends unregistered, for SENDMSG_ZC (one request per message; newer
// kernels take registered buffers in it) and SEND_ZC (one request per
// buffer, as on older kernels), in the same run, one message of 16 buffers
// carved from a zflow arena. Loopback copies every zero-copy send, so the
// kernel's per-request page pinning is all registration can save here.
//
//	go test -ldflags=-checklinkname=0 -run '^$' -bench BenchmarkSendRegistered ./io/netzc/uringzc/
func BenchmarkSendRegistered(b *testing.B) {
	needZC(b)
	arena, err := buffers.New(buffers.ArenaConfig{ExtentSize: 64 << 20, QuietFallback: true})
	if err != nil {
		b.Skipf("no arena here: %v", err)
	}
	defer arena.Close()
	for _, size := range []int{64 << 10, 1 << 20, 4 << 20} {
		bufs := make([][]byte, 16)
		for i := range bufs {
			bufs[i] = arena.Allocate(size / 16)
		}
		for _, how := range []string{"sendmsg_zc", "sendmsg_zc_fixed", "send_zc", "send_zc_fixed"} {
			b.Run(fmt.Sprintf("size=%dKiB/%s", size>>10, how), func(b *testing.B) {
				c, s := pair(b)
				done := discard(s)
				opts := netzc.Options{}
				fixed := strings.HasSuffix(how, "_fixed")
				if fixed {
					opts.Registered = arena.Arena().Extents()
				}
				snd, err := New(c, opts)
				if err != nil {
					b.Fatal(err)
				}
				if strings.HasPrefix(how, "send_zc") {
					snd.zs.SingleBuffer()
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if err := snd.Send(bufs, nil); err != nil {
						b.Fatal(err)
					}
				}
				st := snd.Stats()
				if err := snd.Close(context.Background(), false); err != nil {
					b.Fatal(err)
				}
				<-done
				if fixed && st.FixedSends == 0 {
					b.Fatal("no request sent a registered buffer")
				}
				b.ReportMetric(float64(st.ZeroCopySends)/float64(b.N), "requests/op")
			})
		}
		for _, buf := range bufs {
			arena.Free(buf)
		}
	}
}

// discard reads and drops everything s receives, closes it, and closes the
// returned channel when the peer is gone.
func discard(s *net.TCPConn) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, s)
		s.Close()
		close(done)
	}()
	return done
}
