//go:build linux

package storage_test

import (
	"errors"
	"os"
	"regexp"
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
	// A large file on tmpfs read whole: mmap, unless mapping was measured
	// slower than copying here, and then the reason says so with figures
	// (measured once per file system: after the cases above, which the
	// measurement would change).
	big := shm + "/big.bin"
	if err := os.WriteFile(big, make([]byte, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	defer storage.ForgetMapCosts()
	if b, err := storage.Select("auto", big, storage.Options{WholeFile: true}); err != nil {
		t.Fatal(err)
	} else if b.Name() == "mmap" && !strings.Contains(b.Reason(), "read whole") ||
		b.Name() == "posix" && !regexp.MustCompile(`costs more than copying it on this machine \(8 MiB of .*big.bin: mapped and read in \S+, copied and read in \S+\): pread`).MatchString(b.Reason()) ||
		b.Name() != "mmap" && b.Name() != "posix" {
		t.Errorf("auto on a large tmpfs file read whole: %s (%s)", b.Name(), b.Reason())
	} else {
		t.Logf("auto on a large tmpfs file read whole: %s (%s)", b.Name(), b.Reason())
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

// TestRefuse: a refused backend fails Select and New with the reason,
// auto on tmpfs for a whole-file read falls back from mmap to posix, and
// restore makes it available again.
func TestRefuse(t *testing.T) {
	shm := storagetest.ShmDir(t)
	why := errors.New("refused for the test")
	restore := storage.Refuse("mmap", why)
	if _, err := storage.Select("mmap", shm, storage.Options{}); err == nil || !strings.Contains(err.Error(), why.Error()) {
		t.Errorf("Select of a refused backend: %v, want the reason", err)
	}
	if _, err := storage.New("mmap", storage.Options{}, ""); err == nil || !strings.Contains(err.Error(), why.Error()) {
		t.Errorf("New of a refused backend: %v, want the reason", err)
	}
	if b, err := storage.Select("auto", shm, storage.Options{WholeFile: true}); err != nil || b.Name() != "posix" {
		t.Errorf("auto with mmap refused: %v %v, want posix", b, err)
	}
	restore()
	if b, err := storage.Select("auto", shm, storage.Options{WholeFile: true}); err != nil || b.Name() != "mmap" {
		t.Errorf("auto after restore: %v %v, want mmap", b, err)
	}
}
