package storage

import "testing"

// FuzzParseMountinfo: any line, well-formed or not, parses without a
// panic, and a match always names a file system.
func FuzzParseMountinfo(f *testing.F) {
	for _, s := range []string{
		"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
		"25 1 0:22 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw",
		"25 1 0:22 / /x rw - ",
		"- - 0:22 - - - -",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		fs, _, ok := parseMountinfo(line, "0:22")
		if ok && fs == "" {
			t.Errorf("match without a file system type: %q", line)
		}
	})
}
