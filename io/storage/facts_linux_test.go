package storage

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		line, want, fstype, source string
		ok                         bool
	}{
		{"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue", "98:0", "ext3", "/dev/root", true},
		{"25 1 0:22 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw", "0:22", "tmpfs", "tmpfs", true},
		{"25 1 0:22 / /dev/shm rw - tmpfs tmpfs rw", "0:23", "", "", false},
		{"garbage", "0:22", "", "", false},
		{"25 1 0:22 / /x rw shared:4", "0:22", "", "", false},
	}
	for _, tc := range tests {
		fs, src, ok := parseMountinfo(tc.line, tc.want)
		if fs != tc.fstype || src != tc.source || ok != tc.ok {
			t.Errorf("parseMountinfo(%q, %s) = %q, %q, %v", tc.line, tc.want, fs, src, ok)
		}
	}
}

func TestProbeReal(t *testing.T) {
	wd, _ := os.Getwd()
	f, err := Probe(wd + "/not-yet-written/file.arrow")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("work tree: %+v", f)
	if f.FSType == "" || f.Memory {
		t.Errorf("work tree facts %+v: want a named, on-disk file system", f)
	}
	if s, err := Probe("/dev/shm"); err == nil && s.FSType == "tmpfs" && !s.Memory {
		t.Errorf("/dev/shm facts %+v: tmpfs must be Memory", s)
	}
}

// TestMountTableCached checks that the cached table answers what a scan of
// /proc/self/mountinfo answers, that repeated probes do not read it again,
// and that a mount made after it was read is seen (the poll, or the miss,
// reads it again): a tmpfs mounted on a folder of the disk and unmounted.
func TestMountTableCached(t *testing.T) {
	wd, _ := os.Getwd()
	for _, p := range []string{wd, "/dev/shm", "/proc", "/"} {
		dev := devOf(t, p)
		f1, s1, err1 := mounts.lookup(dev)
		f2, s2, err2 := scanMountinfo(dev)
		if f1 != f2 || s1 != s2 || (err1 == nil) != (err2 == nil) {
			t.Errorf("%s (%s): cached %q %q %v, scanned %q %q %v", p, dev, f1, s1, err1, f2, s2, err2)
		}
	}
	mounts.mu.Lock()
	before := mounts.reads
	mounts.mu.Unlock()
	for range 100 {
		if _, err := Probe(wd); err != nil {
			t.Fatal(err)
		}
	}
	mounts.mu.Lock()
	after := mounts.reads
	mounts.mu.Unlock()
	if after != before {
		t.Errorf("100 probes read the mount table %d times, want 0 (it is cached)", after-before)
	}

	dir := t.TempDir()
	if f, _ := Probe(dir); f.Memory {
		t.Skipf("%s is already on tmpfs", dir)
	}
	if err := unix.Mount("zflow-test", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): the invalidation is not exercised", err)
	}
	mounted := true
	defer func() {
		if mounted {
			unix.Unmount(dir, 0)
		}
	}()
	f, err := Probe(dir + "/x")
	if err != nil || f.FSType != "tmpfs" || !f.Memory || f.Source != "zflow-test" {
		t.Errorf("after mounting a tmpfs: %+v %v, want tmpfs from zflow-test", f, err)
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	if f, err := Probe(dir + "/x"); err != nil || f.Memory {
		t.Errorf("after unmounting it: %+v %v, want the disk again", f, err)
	}
}
