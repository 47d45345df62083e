//go:build !linux

package posix

import (
	"errors"

	"github.com/zflowdev/zflow/io/storage"
)

// maxVec is 1: no preadv2 here, every request is its own call.
const maxVec = 1

type iovec struct{}

func (f *File) vcall(op storage.Op, rs []storage.Request, off int64, scratch *[]iovec) (int, error) {
	return 0, errors.ErrUnsupported
}
