// Package topologytest unpacks the fake sysfs and procfs trees that the
// topology tests run on. The trees are kept as text archives
// (topology/testdata/trees/*.txtar) rather than as directories because
// sysfs names hold colons (pci0000:00, /sys/dev/block/259:0), which a Go
// module zip refuses: a directory tree would make the zflow module
// impossible to download.
//
// The format is txtar (golang.org/x/tools/txtar): a free comment, then
// files, each a line "-- path --" followed by its contents. Two additions
// make it fit sysfs: "-- path -> target --" (no contents) is a symbolic link
// and "-- path/ --" an empty directory.
//
// It imports nothing of ours, so topology's own tests can use it.
package topologytest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tree unpacks the archive at path into a fresh temporary directory and
// returns that directory: the tree's sysfs is DIR/sys, its procfs DIR/proc.
func Tree(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Unpack(data, dir); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return dir
}

// Unpack writes the files, links and directories of a txtar archive under
// dir. Paths must be relative and stay inside dir.
func Unpack(archive []byte, dir string) error {
	var (
		name   string
		body   bytes.Buffer
		inFile bool
	)
	flush := func() error {
		if !inFile {
			return nil
		}
		return writeEntry(dir, name, body.Bytes())
	}
	for _, line := range bytes.SplitAfter(archive, []byte("\n")) {
		if n, ok := header(line); ok {
			if err := flush(); err != nil {
				return err
			}
			name, inFile = n, true
			body.Reset()
			continue
		}
		if inFile {
			body.Write(line)
		}
	}
	return flush()
}

// header recognizes "-- name --".
func header(line []byte) (string, bool) {
	s := strings.TrimRight(string(line), "\r\n")
	if !strings.HasPrefix(s, "-- ") || !strings.HasSuffix(s, " --") || len(s) < 7 {
		return "", false
	}
	return strings.TrimSpace(s[3 : len(s)-3]), true
}

func writeEntry(dir, name string, body []byte) error {
	name, target, isLink := strings.Cut(name, " -> ")
	isDir := strings.HasSuffix(name, "/")
	clean := filepath.Clean(filepath.FromSlash(name))
	if filepath.IsAbs(clean) || clean == "." || strings.HasPrefix(clean, "..") {
		return fmt.Errorf("topologytest: bad path %q", name)
	}
	p := filepath.Join(dir, clean)
	switch {
	case isDir:
		return os.MkdirAll(p, 0o755)
	case isLink:
		to := filepath.Join(filepath.Dir(p), filepath.FromSlash(target))
		if rel, err := filepath.Rel(dir, to); filepath.IsAbs(target) || err != nil || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("topologytest: link %s: target %q leaves the tree", name, target)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.Symlink(target, p)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, body, 0o644)
}
