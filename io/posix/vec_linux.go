//go:build linux

package posix

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/io/storage"
)

// maxVec is the most requests one preadv2/pwritev2 serves (IOV_MAX).
const maxVec = 1024

type iovec = unix.Iovec

// vcall is one preadv2 or pwritev2 (flags 0) over the buffers of rs, at
// off; the iovec array is the caller's scratch (the File's, or a queue
// worker's), so the call allocates nothing once it has grown.
func (f *File) vcall(op storage.Op, rs []storage.Request, off int64, scratch *[]iovec) (int, error) {
	if cap(*scratch) < len(rs) {
		*scratch = make([]unix.Iovec, len(rs))
	}
	iov := (*scratch)[:len(rs)]
	for i := range rs {
		iov[i].Base = unsafe.SliceData(rs[i].Buf)
		iov[i].SetLen(len(rs[i].Buf))
	}
	trap := uintptr(unix.SYS_PREADV2)
	if op == storage.OpWrite {
		trap = unix.SYS_PWRITEV2
	}
	// preadv2(fd, iov, iovcnt, pos_l, pos_h, flags): on 64-bit Linux the
	// whole offset goes in pos_l.
	n, _, errno := unix.Syscall6(trap, f.f.Fd(), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)), uintptr(off), uintptr(uint64(off)>>32>>32), 0)
	for i := range iov {
		iov[i].Base = nil // drop the references to the caller's buffers
	}
	if errno != 0 {
		return 0, syscall.Errno(errno)
	}
	return int(n), nil
}
