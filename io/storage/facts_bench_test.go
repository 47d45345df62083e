//go:build linux

package storage

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// scanMountinfo is how Probe found a device's mount before the table was
// cached: open /proc/self/mountinfo and scan it line by line on every
// call. The benchmark's baseline, and the tests' oracle.
func scanMountinfo(dev string) (fstype, source string, err error) {
	file, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if fstype, source, ok := parseMountinfo(sc.Text(), dev); ok {
			return fstype, source, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", err
	}
	return "", "", errors.New("not found")
}

func devOf(tb testing.TB, path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
}

// BenchmarkSelect measures storage.Select for a file on the disk (what a
// file operator's Build calls per file) with the mount table cached
// against the same probe scanning /proc/self/mountinfo each time, and the
// mount lookup alone both ways. Run: go test ./io/storage -run '^$' -bench Select
func BenchmarkSelect(b *testing.B) {
	wd, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	path := wd + "/facts_linux.go"
	dev := devOf(b, path)
	b.Run("op=select/mountinfo=cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Select("auto", path, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=select/mountinfo=scanned", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Select("auto", path, Options{}); err != nil {
				b.Fatal(err)
			}
			if _, _, err := scanMountinfo(dev); err != nil { // what Probe did besides
				b.Fatal(err)
			}
		}
	})
	b.Run("op=mount/mountinfo=cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := mounts.lookup(dev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=mount/mountinfo=scanned", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := scanMountinfo(dev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
