package posix_test

import (
	"testing"

	"github.com/zflowdev/zflow/io/storage/storagetest"
)

func TestDirect(t *testing.T) {
	storagetest.Direct(t, open)
}
