package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "out.txt")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(f.TempName()) != filepath.Dir(path) {
		t.Fatalf("temp %s not next to %s", f.TempName(), path)
	}
	if _, err := f.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("final name exists before commit: %v", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "hello" {
		t.Fatalf("read back %q, %v", b, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != Perm {
		t.Fatalf("mode %v, want %v", st.Mode().Perm(), Perm)
	}
	if names := listDir(t, filepath.Dir(path)); len(names) != 1 {
		t.Fatalf("leftover files: %v", names)
	}
	f.Abort() // no-op after commit
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("abort after commit removed the file: %v", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatalf("second commit: %v", err)
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Fatal("write after commit succeeded")
	}
}

func TestCommitReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new"))
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatalf("final file changed before commit: %q", b)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Fatalf("got %q", b)
	}
}

func TestAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.parquet")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("partial"))
	f.Abort()
	f.Abort()
	if names := listDir(t, dir); len(names) != 0 {
		t.Fatalf("abort left %v", names)
	}
	if err := f.Commit(); err == nil {
		t.Fatal("commit after abort succeeded")
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Fatalf("commit after abort left %v", names)
	}
}

func TestCreateErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(""); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := Create(dir + "/"); err == nil {
		t.Error("directory path accepted")
	}
	// A parent that is a file.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Create(filepath.Join(file, "x")); err == nil {
		t.Error("create under a regular file succeeded")
	}
}
