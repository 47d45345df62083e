package topologytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnpack(t *testing.T) {
	dir := t.TempDir()
	archive := "a comment\n-- -- not a header\n-- sys/a:b/file --\nline 1\nline 2\n-- sys/link -> a:b/file --\n-- sys/empty/ --\n-- sys/blank --\n"
	if err := Unpack([]byte(archive), dir); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"sys/a:b/file": "line 1\nline 2\n", "sys/link": "line 1\nline 2\n", "sys/blank": ""} {
		got, err := os.ReadFile(filepath.Join(dir, path))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", path, got, err, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(dir, "sys/link")); err != nil || l != "a:b/file" {
		t.Errorf("link: %q %v", l, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "sys/empty")); err != nil || !fi.IsDir() {
		t.Errorf("empty dir: %v", err)
	}
	for _, bad := range []string{"-- ../x --\n", "-- /etc/x --\n", "-- sys/l -> ../../x --\n", "-- sys/l -> /etc --\n"} {
		if err := Unpack([]byte(bad), t.TempDir()); err == nil || !strings.Contains(err.Error(), "topologytest:") {
			t.Errorf("Unpack(%q): %v", bad, err)
		}
	}
}
