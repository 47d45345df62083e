package storage

import (
	"os"
	"testing"
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
