//go:build unix

package posix

import (
	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/io/storage"
)

// call is one pread or pwrite on the file's descriptor, its error a
// syscall.Errno (EINTR comes back to the loop, not retried here).
func (f *File) call(op storage.Op, buf []byte, off int64) (int, error) {
	var n int
	var err error
	if op == storage.OpWrite {
		n, err = unix.Pwrite(int(f.f.Fd()), buf, off)
	} else {
		n, err = unix.Pread(int(f.f.Fd()), buf, off)
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}
