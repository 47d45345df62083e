package posix_test

import (
	"bytes"
	"context"
	"os"
	"runtime"
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

// Adjacent requests go as one preadv2; a gap or an unaligned request
// breaks the run.
func TestVectored(t *testing.T) {
	dir := storagetest.ShmDir(t)
	path, want := storagetest.WriteFile(t, dir, "v.bin", 100000)
	f, err := posix.Open(path, os.O_RDONLY, 0, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	offs := []int64{0, 1000, 2000, 3000, 10000, 11000, 50000}
	reqs := make([]storage.Request, len(offs))
	for i, off := range offs {
		reqs[i] = storage.Request{Buf: make([]byte, 1000), Off: off}
	}
	if err := f.ReadBatch(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		if r.Err != nil || !bytes.Equal(r.Buf, want[r.Off:r.Off+1000]) {
			t.Errorf("request %d: n=%d err=%v", i, r.N, r.Err)
		}
	}
	wantCalls := int64(3) // [0..3], [10000, 11000], [50000]
	if runtime.GOOS != "linux" {
		wantCalls = int64(len(reqs))
	}
	if st := f.Stats(); st.Calls != wantCalls {
		t.Errorf("Stats.Calls = %d, want %d", st.Calls, wantCalls)
	}
}

// posix has no queue of its own: storage.NewQueue runs its batches.
func TestQueue(t *testing.T) {
	for where, dir := range storagetest.Dirs(t) {
		t.Run(where, func(t *testing.T) { storagetest.QueueConformance(t, dir, open) })
	}
}
