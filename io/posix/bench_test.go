package posix_test

import (
	"testing"

	"github.com/zflowdev/zflow/io/storage/storagetest"
)

// BenchmarkRead: sequential 1 MiB and random 4 KiB reads (io/uring's
// BenchmarkBackends compares all backends in one run).
func BenchmarkRead(b *testing.B) { storagetest.BenchBackend(b, open, true) }
