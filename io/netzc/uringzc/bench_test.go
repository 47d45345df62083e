//go:build linux

package uringzc

import (
	"context"
	"fmt"
	"io"
	"testing"

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
				done := make(chan struct{})
				go func() {
					io.Copy(io.Discard, s)
					s.Close()
					close(done)
				}()
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
