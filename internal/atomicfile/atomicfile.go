package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
)

// Perm is the mode of the files Create makes (before the rename).
const Perm os.FileMode = 0o644

// DirPerm is the mode of the parent directories Create makes.
const DirPerm os.FileMode = 0o755

// File is a file being written under a temporary name. It is not safe for
// concurrent use. The caller owns it and must end it with Commit or Abort,
// or with Publish and then Forget or Rollback.
type File struct {
	f     *os.File
	path  string // final name
	dir   string // its directory
	base  string // its base name
	tag   Tag
	tmp   string // temporary name, same directory
	state int
	undo  bool // Publish kept the undo (prev, new); false: no hard links here
	prev  bool // there was a file under the final name, kept as the prev link
}

const (
	open = iota
	published
	committed
	rolledBack
	aborted
)

// Create makes the parent directory of path if missing (like mkdir -p) and
// opens a new temporary file next to it, mode 0644, named after path and this
// process (see FormatName) so that a later run can recognise it if this
// process dies before removing it. Create does not look at other runs'
// files: Recover does.
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
	me, _ := Self() // without /proc the start time is 0: never judged dead
	var f *os.File
	var tag Tag
	var err error
	for range 16 {
		tag = Tag{Owner: me, Rand: rand.Uint32()}
		f, err = os.OpenFile(filepath.Join(dir, FormatName(base, tag, KindTemp)), os.O_RDWR|os.O_CREATE|os.O_EXCL, Perm)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("atomicfile: create %s: %w", path, err)
	}
	if err := f.Chmod(Perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("atomicfile: create %s: %w", path, err)
	}
	return &File{f: f, path: path, dir: dir, base: base, tag: tag, tmp: f.Name()}, nil
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
// failed, after the rename). Commit keeps no undo: see Publish for that.
func (f *File) Commit() error {
	switch f.state {
	case committed:
		return nil
	case open:
	default:
		return fmt.Errorf("atomicfile: commit %s: already %s", f.path, stateName(f.state))
	}
	if err := f.closeTemp("commit"); err != nil {
		return err
	}
	if err := os.Rename(f.tmp, f.path); err != nil {
		f.state = aborted
		os.Remove(f.tmp)
		return fmt.Errorf("atomicfile: commit %s: %w", f.path, err)
	}
	f.state = committed
	if err := syncDir(f.dir); err != nil {
		return fmt.Errorf("atomicfile: commit %s: sync directory: %w", f.path, err)
	}
	return nil
}

// Publish is the first phase of a commit that can be undone. It syncs and
// closes the temporary file and renames it to the final name, like Commit,
// but first keeps the file it replaces as a hard link named
// FormatName(…, KindPrev) and the new file as a second hard link
// FormatName(…, KindNew), the mark of a pending commit. Readers of the final
// name see the previous file or the new one, never neither. Then the caller
// ends the commit with Forget, or undoes it with Rollback.
//
// If the process dies before Forget, the next Recover of the same final name
// (after this process is gone) undoes the publication: a run that did not
// end well leaves the previous file, never a mix.
//
// On a filesystem without hard links (vfat, some FUSE mounts) Publish falls
// back to Commit's plain rename, and Rollback then reports that it cannot
// undo. On error the temporary file is removed and the final name is
// untouched (unless the directory sync failed, after the rename: then the
// file is published and Rollback or Forget still apply).
func (f *File) Publish() error {
	switch f.state {
	case published:
		return nil
	case open:
	default:
		return fmt.Errorf("atomicfile: publish %s: already %s", f.path, stateName(f.state))
	}
	if err := f.closeTemp("publish"); err != nil {
		return err
	}
	fail := func(what string, err error) error {
		f.state = aborted
		if f.undo {
			os.Remove(f.name(KindNew))
		}
		if f.prev {
			os.Remove(f.name(KindPrev))
		}
		os.Remove(f.tmp)
		return fmt.Errorf("atomicfile: publish %s: %s%w", f.path, what, err)
	}
	f.undo = true
	switch err := os.Link(f.path, f.name(KindPrev)); {
	case err == nil:
		f.prev = true
	case errors.Is(err, fs.ErrNotExist):
		// Nothing under the final name: the undo removes the new file.
	case noHardLinks(err):
		f.undo = false
	default:
		f.undo = false
		return fail("keep the previous file: ", err)
	}
	if f.undo {
		if err := os.Link(f.tmp, f.name(KindNew)); err != nil {
			f.undo = false
			if !noHardLinks(err) {
				return fail("mark the commit pending: ", err)
			}
			if f.prev {
				os.Remove(f.name(KindPrev))
				f.prev = false
			}
		}
	}
	if err := os.Rename(f.tmp, f.path); err != nil {
		return fail("", err)
	}
	f.state = published
	if err := syncDir(f.dir); err != nil {
		return fmt.Errorf("atomicfile: publish %s: sync directory: %w", f.path, err)
	}
	return nil
}

// Forget ends a commit begun by Publish: it removes the pending mark (from
// then on the commit stands, even if the process dies), then the kept
// previous file. If removing the mark fails the commit stays pending and
// Rollback still works; an error after that leaves the previous file's link
// for the next Recover to remove.
func (f *File) Forget() error {
	switch f.state {
	case committed:
		return nil
	case published:
	default:
		return fmt.Errorf("atomicfile: forget the previous file of %s: not published (%s)", f.path, stateName(f.state))
	}
	if f.undo {
		if err := os.Remove(f.name(KindNew)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("atomicfile: forget the previous file of %s: %w", f.path, err)
		}
	}
	f.state = committed
	if f.prev {
		if err := os.Remove(f.name(KindPrev)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("atomicfile: forget the previous file of %s: %w", f.path, err)
		}
	}
	if err := syncDir(f.dir); err != nil {
		return fmt.Errorf("atomicfile: forget the previous file of %s: sync directory: %w", f.path, err)
	}
	return nil
}

// Rollback undoes Publish: the previous file is back under the final name,
// or, if there was none, the final name is removed. It refuses (and reports)
// when the final name no longer holds the file Publish put there (someone
// replaced it since), and when Publish could keep no undo. On error the
// kept files stay, and the next Recover after this process is gone finishes
// the job.
func (f *File) Rollback() error {
	switch f.state {
	case rolledBack:
		return nil
	case published:
	default:
		return fmt.Errorf("atomicfile: roll back %s: not published (%s)", f.path, stateName(f.state))
	}
	if !f.undo {
		f.state = committed
		return fmt.Errorf("atomicfile: roll back %s: cannot, the filesystem made no hard link to keep the previous file; the new file stays", f.path)
	}
	prev := ""
	if f.prev {
		prev = f.name(KindPrev)
	}
	if _, err := undo(f.path, prev, f.name(KindNew)); err != nil {
		return fmt.Errorf("atomicfile: roll back %s: %w", f.path, err)
	}
	f.state = rolledBack
	if err := syncDir(f.dir); err != nil {
		return fmt.Errorf("atomicfile: roll back %s: sync directory: %w", f.path, err)
	}
	return nil
}

// errReplaced says that the final name holds neither the published file nor
// nothing: someone replaced it since, and an undo would destroy their file.
var errReplaced = errors.New("no longer holds the published file (it was replaced since); left it")

// undo puts prev (a name in the final name's directory, or "" for no
// previous file) back under path if path still holds the same file as nw,
// then removes nw. undone tells whether path was changed. If path holds
// another file, undo leaves it and returns an error (nw and prev stay).
func undo(path, prev, nw string) (undone bool, err error) {
	ni, err := os.Lstat(nw)
	if err != nil {
		return false, err
	}
	fi, err := os.Lstat(path)
	switch {
	case err == nil && os.SameFile(ni, fi):
		if prev != "" {
			err = os.Rename(prev, path)
		} else {
			err = os.Remove(path)
		}
		if err != nil {
			return false, err
		}
		undone = true
	case errors.Is(err, fs.ErrNotExist):
		// Someone removed the published file: the previous one, if any,
		// goes back all the same (it replaces nothing).
		if prev != "" {
			if err := os.Rename(prev, path); err != nil {
				return false, err
			}
			undone = true
		}
	case err != nil:
		return false, err
	default:
		return false, fmt.Errorf("%s: %w", path, errReplaced)
	}
	if err := os.Remove(nw); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return undone, err
	}
	return undone, nil
}

// Abort closes and removes the temporary file. It is idempotent, and a no-op
// after Commit or Publish (undo a Publish with Rollback).
func (f *File) Abort() {
	if f.state != open {
		return
	}
	f.state = aborted
	f.f.Close()
	os.Remove(f.tmp)
}

// closeTemp syncs and closes the temporary file; on error it removes it.
func (f *File) closeTemp(op string) error {
	if err := f.f.Sync(); err != nil {
		f.Abort()
		return fmt.Errorf("atomicfile: %s %s: sync: %w", op, f.path, err)
	}
	if err := f.f.Close(); err != nil {
		f.state = aborted
		os.Remove(f.tmp)
		return fmt.Errorf("atomicfile: %s %s: close: %w", op, f.path, err)
	}
	return nil
}

// name is the path of this file's kind file.
func (f *File) name(k Kind) string { return filepath.Join(f.dir, FormatName(f.base, f.tag, k)) }

func stateName(s int) string {
	switch s {
	case open:
		return "open"
	case published:
		return "published"
	case committed:
		return "committed"
	case rolledBack:
		return "rolled back"
	case aborted:
		return "aborted"
	}
	return "?"
}

// noHardLinks tells whether a link error means the filesystem (or its
// policy) makes no hard links here, as opposed to an I/O failure.
func noHardLinks(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) ||
		errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EMLINK) ||
		errors.Is(err, syscall.EXDEV)
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
