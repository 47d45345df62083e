//go:build linux

package storage_test

import (
	"strings"
	"testing"

	"github.com/zflowdev/zflow/io/storage"
	"github.com/zflowdev/zflow/io/storage/storagetest"

	_ "github.com/zflowdev/zflow/io/mmap"
	_ "github.com/zflowdev/zflow/io/posix"
)

// This test binary links posix and mmap but not uring: auto must say so
// when it would have picked uring.
func TestSelectReal(t *testing.T) {
	shm := storagetest.ShmDir(t)
	disk := storagetest.DiskDir(t)
	tests := []struct {
		kind, dir string
		opts      storage.Options
		want      string
		reason    string
	}{
		{"auto", shm, storage.Options{}, "posix", "tmpfs keeps the file in memory"},
		{"auto", shm, storage.Options{WholeFile: true}, "mmap", "read whole"},
		{"auto", shm, storage.Options{Direct: true}, "posix", "direct: true dropped"},
		{"posix", disk, storage.Options{}, "posix", "asked for io: posix"},
	}
	for _, tc := range tests {
		b, err := storage.Select(tc.kind, tc.dir+"/f.bin", tc.opts)
		if err != nil {
			t.Fatalf("Select(%s, %s): %v", tc.kind, tc.dir, err)
		}
		if b.Name() != tc.want || !strings.Contains(b.Reason(), tc.reason) {
			t.Errorf("Select(%s, %s, %+v) = %s (%q), want %s with %q", tc.kind, tc.dir, tc.opts, b.Name(), b.Reason(), tc.want, tc.reason)
		}
	}
	f, err := storage.Probe(disk)
	if err != nil {
		t.Fatal(err)
	}
	if f.Block && f.DeviceDepth != 1 {
		b, err := storage.Select("auto", disk+"/f.bin", storage.Options{QueueDepth: 32})
		if err != nil {
			t.Fatal(err)
		}
		if b.Name() != "posix" || !strings.Contains(b.Reason(), "not linked") {
			t.Errorf("auto on %s without uring linked: %s (%q)", f.Device, b.Name(), b.Reason())
		}
	}
	if _, err := storage.Select("uring", disk+"/f.bin", storage.Options{}); err == nil || !strings.Contains(err.Error(), "not linked") {
		t.Errorf("explicit uring without it linked: %v", err)
	}
	if b, _ := storage.Select("mmap", disk+"/f.bin", storage.Options{}); b != nil {
		if _, err := b.Open(disk+"/w.bin", 0o1|0o100, 0o644); err == nil || !strings.Contains(err.Error(), "cannot open") {
			t.Errorf("mmap opened for writing: %v", err)
		}
	}
}
