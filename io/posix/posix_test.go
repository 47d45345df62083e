package posix_test

import (
	"os"
	"testing"

	"github.com/zflowdev/zflow/io/posix"
	"github.com/zflowdev/zflow/io/storage"
	"github.com/zflowdev/zflow/io/storage/storagetest"
)

func open(path string, flag int, perm os.FileMode, o storage.Options) (storage.File, error) {
	return posix.Open(path, flag, perm, o)
}

func TestConformance(t *testing.T) {
	for where, dir := range storagetest.Dirs(t) {
		t.Run(where, func(t *testing.T) { storagetest.Conformance(t, dir, open) })
	}
}

func TestWrite(t *testing.T) {
	for where, dir := range storagetest.Dirs(t) {
		t.Run(where, func(t *testing.T) { storagetest.WriteConformance(t, dir, open) })
	}
}
