//go:build linux

package uring_test

import (
	"os"
	"testing"

	"github.com/zflowdev/zflow/io/storage"
	"github.com/zflowdev/zflow/io/storage/storagetest"
)

// BenchmarkRead: io_uring alone.
func BenchmarkRead(b *testing.B) {
	needUring(b)
	storagetest.BenchBackend(b, open, true)
}

// BenchmarkBackends measures every backend on the same files in one run
// (only ratios within a run mean anything):
//
//	go test -ldflags=-checklinkname=0 -run '^$' -bench Backends -benchtime 2s ./io/uring/
func BenchmarkBackends(b *testing.B) {
	needUring(b)
	for _, name := range []string{"posix", "uring", "mmap"} {
		spec, err := storage.Lookup(name)
		if err != nil {
			b.Fatal(err)
		}
		open := func(path string, flag int, perm os.FileMode, o storage.Options) (storage.File, error) {
			return spec.Open(path, flag, perm, o)
		}
		b.Run("backend="+name, func(b *testing.B) { storagetest.BenchBackend(b, open, name != "mmap") })
	}
}
