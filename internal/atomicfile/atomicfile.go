package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Perm is the mode of the files Create makes (before the rename).
const Perm os.FileMode = 0o644

// DirPerm is the mode of the parent directories Create makes.
const DirPerm os.FileMode = 0o755

// File is a file being written under a temporary name. It is not safe for
// concurrent use. The caller owns it and must end it with Commit or Abort.
type File struct {
	f     *os.File
	path  string // final name
	tmp   string // temporary name, same directory
	state int
}

const (
	open = iota
	committed
	aborted
)

// Create makes the parent directory of path if missing (like mkdir -p) and
// opens a new temporary file ".<base>.tmp-<random>" in it, mode 0644.
func Create(path string) (*File, error) {
	if path == "" {
		return nil, errors.New("atomicfile: create: empty path")
	}
	dir, base := filepath.Split(path)
	if base == "" || base == "." || base == ".." {
		return nil, fmt.Errorf("atomicfile: create %s: not a file name", path)
	}
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, DirPerm); err != nil {
		return nil, fmt.Errorf("atomicfile: create %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+strings.ReplaceAll(base, "*", "_")+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("atomicfile: create %s: %w", path, err)
	}
	if err := f.Chmod(Perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("atomicfile: create %s: %w", path, err)
	}
	return &File{f: f, path: path, tmp: f.Name()}, nil
}

// Write writes to the temporary file.
func (f *File) Write(p []byte) (int, error) {
	if f.state != open {
		return 0, fmt.Errorf("atomicfile: write %s: file already committed or aborted", f.path)
	}
	return f.f.Write(p)
}

// Path is the final name.
func (f *File) Path() string { return f.path }

// TempName is the temporary name the data is written under until Commit.
func (f *File) TempName() string { return f.tmp }

// Commit syncs and closes the temporary file, renames it to the final name
// (replacing any file there) and syncs the directory. On error the temporary
// file is removed and the final name is untouched (unless the directory sync
// failed, after the rename).
func (f *File) Commit() error {
	switch f.state {
	case committed:
		return nil
	case aborted:
		return fmt.Errorf("atomicfile: commit %s: already aborted", f.path)
	}
	if err := f.f.Sync(); err != nil {
		f.Abort()
		return fmt.Errorf("atomicfile: commit %s: sync: %w", f.path, err)
	}
	if err := f.f.Close(); err != nil {
		f.state = aborted
		os.Remove(f.tmp)
		return fmt.Errorf("atomicfile: commit %s: close: %w", f.path, err)
	}
	if err := os.Rename(f.tmp, f.path); err != nil {
		f.state = aborted
		os.Remove(f.tmp)
		return fmt.Errorf("atomicfile: commit %s: %w", f.path, err)
	}
	f.state = committed
	if err := syncDir(filepath.Dir(f.path)); err != nil {
		return fmt.Errorf("atomicfile: commit %s: sync directory: %w", f.path, err)
	}
	return nil
}

// Abort closes and removes the temporary file. It is idempotent, and a no-op
// after a successful Commit.
func (f *File) Abort() {
	if f.state != open {
		return
	}
	f.state = aborted
	f.f.Close()
	os.Remove(f.tmp)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
