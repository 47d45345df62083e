//go:build !unix

package posix

import (
	"errors"
	"io"

	"github.com/zflowdev/zflow/io/storage"
)

// call is one ReadAt or WriteAt (no pread on this platform; os.File
// positions each call itself).
func (f *File) call(op storage.Op, buf []byte, off int64) (int, error) {
	if op == storage.OpWrite {
		return f.f.WriteAt(buf, off)
	}
	n, err := f.f.ReadAt(buf, off)
	if errors.Is(err, io.EOF) {
		err = nil // the loop sees n == 0 (or the rest) next
	}
	return n, err
}
