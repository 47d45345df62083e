package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
)

// Dir is a directory tree being written under a temporary name next to its
// final name (a partitioned output), published as a whole. It uses the
// names of File (FormatName): the tree is written in the KindTemp
// directory; Publish first makes the KindNew marker (an empty file: the
// commit is pending), then renames the directory under the final name to
// KindPrev and the temporary directory to the final name; Forget removes the
// marker (the commit is final) and then the previous tree; Rollback puts
// the previous tree back. Between Publish's two renames the final name
// briefly does not exist: a directory cannot be replaced by one rename.
//
// RecoverDir, run before the next write of the same final name, undoes what
// a dead run left: a pending commit is undone (the previous tree comes
// back, or the new one goes if there was none), and its temporary trees are
// removed.
type Dir struct {
	path, dir, base string
	tag             Tag
	tmp             string
	state           int // open, published, committed (forgotten), aborted
	hadPrev         bool
}

const (
	dirOpen = iota
	dirPublished
	dirDone
	dirAborted
)

// CreateDir makes the temporary directory of the tree whose final name is
// path (and path's parent if missing).
func CreateDir(path string) (*Dir, error) {
	dir, base := filepath.Split(filepath.Clean(path))
	if base == "" || base == "." || base == ".." || base == "/" {
		return nil, fmt.Errorf("atomicfile: create directory %s: not a directory name", path)
	}
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, DirPerm); err != nil {
		return nil, fmt.Errorf("atomicfile: create directory %s: %w", path, err)
	}
	me, _ := Self()
	var tag Tag
	var err error
	for range 16 {
		tag = Tag{Owner: me, Rand: rand.Uint32()}
		err = os.Mkdir(filepath.Join(dir, FormatName(base, tag, KindTemp)), DirPerm)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("atomicfile: create directory %s: %w", path, err)
	}
	d := &Dir{path: filepath.Clean(path), dir: dir, base: base, tag: tag}
	d.tmp = d.name(KindTemp)
	return d, nil
}

func (d *Dir) name(k Kind) string { return filepath.Join(d.dir, FormatName(d.base, d.tag, k)) }

// Path is the final name.
func (d *Dir) Path() string { return d.path }

// TempName is the directory the tree is written in until Publish.
func (d *Dir) TempName() string { return d.tmp }

// Publish puts the tree under the final name, keeping the tree it replaces
// until Forget or Rollback. A file (not a directory) under the final name
// is an error: it is not replaced by a tree. The files in the tree must
// have been synced by their writers; Publish syncs the directories.
func (d *Dir) Publish() error {
	if d.state != dirOpen {
		return fmt.Errorf("atomicfile: publish %s: already %s", d.path, dirStateName(d.state))
	}
	fail := func(err error) error {
		d.Abort()
		return fmt.Errorf("atomicfile: publish %s: %w", d.path, err)
	}
	st, err := os.Lstat(d.path)
	switch {
	case err == nil && !st.IsDir():
		return fail(fmt.Errorf("it exists and is not a directory; a partitioned output replaces only a directory"))
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fail(err)
	}
	d.hadPrev = err == nil
	if err := syncTree(d.tmp); err != nil {
		return fail(err)
	}
	marker, err := os.OpenFile(d.name(KindNew), os.O_CREATE|os.O_EXCL|os.O_WRONLY, Perm)
	if err != nil {
		return fail(err)
	}
	marker.Close()
	if err := syncDir(d.dir); err != nil {
		os.Remove(d.name(KindNew))
		return fail(err)
	}
	if d.hadPrev {
		if err := os.Rename(d.path, d.name(KindPrev)); err != nil {
			os.Remove(d.name(KindNew))
			return fail(err)
		}
	}
	if err := os.Rename(d.tmp, d.path); err != nil {
		if d.hadPrev {
			os.Rename(d.name(KindPrev), d.path)
		}
		os.Remove(d.name(KindNew))
		return fail(err)
	}
	d.state = dirPublished
	if err := syncDir(d.dir); err != nil {
		return fmt.Errorf("atomicfile: publish %s: sync directory: %w", d.path, err)
	}
	return nil
}

// Forget ends the commit: the marker goes, then the previous tree.
func (d *Dir) Forget() error {
	if d.state != dirPublished {
		return nil
	}
	d.state = dirDone
	if err := os.Remove(d.name(KindNew)); err != nil {
		return fmt.Errorf("atomicfile: forget %s: %w", d.path, err)
	}
	if d.hadPrev {
		// Out of the prev name first, so that a tree half removed is never
		// taken for the previous tree by a recovery.
		trash := d.tmp
		if err := os.Rename(d.name(KindPrev), trash); err != nil {
			return fmt.Errorf("atomicfile: forget %s: %w", d.path, err)
		}
		if err := os.RemoveAll(trash); err != nil {
			return fmt.Errorf("atomicfile: forget %s: %w", d.path, err)
		}
	}
	return syncDir(d.dir)
}

// Rollback undoes Publish: the previous tree is back under the final name,
// or no tree if there was none.
func (d *Dir) Rollback() error {
	if d.state != dirPublished {
		return nil
	}
	d.state = dirAborted
	if err := os.Rename(d.path, d.tmp); err != nil {
		return fmt.Errorf("atomicfile: roll back %s: %w", d.path, err)
	}
	if d.hadPrev {
		if err := os.Rename(d.name(KindPrev), d.path); err != nil {
			return fmt.Errorf("atomicfile: roll back %s: %w", d.path, err)
		}
	}
	os.Remove(d.name(KindNew))
	if err := os.RemoveAll(d.tmp); err != nil {
		return fmt.Errorf("atomicfile: roll back %s: %w", d.path, err)
	}
	return syncDir(d.dir)
}

// Abort removes the temporary tree; a no-op after Publish.
func (d *Dir) Abort() {
	if d.state == dirOpen {
		d.state = dirAborted
		os.RemoveAll(d.tmp)
	}
}

func dirStateName(s int) string {
	return [...]string{"open", "published", "committed", "aborted"}[s]
}

// syncTree fsyncs every directory under root (files are synced by their
// writers).
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			return syncDir(p)
		}
		return nil
	})
}

// RecoverDir is Recover for a tree written by Dir: for every dead run that
// wrote path, a pending commit (its KindNew marker) is undone — the previous
// tree goes back under the final name, or the new one is removed if there
// was none — and its temporary and previous trees are removed.
func RecoverDir(path string) (notes []string, err error) {
	path = filepath.Clean(path)
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("atomicfile: recover %s: %w", path, err)
	}
	groups := map[Tag]map[Kind]bool{}
	for _, e := range ents {
		if t, k, ok := ParseName(base, e.Name()); ok {
			if groups[t] == nil {
				groups[t] = map[Kind]bool{}
			}
			groups[t][k] = true
		}
	}
	var tags []Tag
	for t := range groups {
		if Alive(t.Owner) == Dead {
			tags = append(tags, t)
		}
	}
	slices.SortFunc(tags, func(a, b Tag) int { return int(b.Start) - int(a.Start) }) // latest first
	var errs []error
	for _, t := range tags {
		g := groups[t]
		name := func(k Kind) string { return filepath.Join(dir, FormatName(base, t, k)) }
		if g[KindNew] {
			// The run died during or after Publish and before Forget: its
			// output goes, the previous tree comes back.
			if !g[KindTemp] { // the new tree reached the final name
				if err := os.RemoveAll(path); err != nil {
					errs = append(errs, fmt.Errorf("atomicfile: recover %s: %w", path, err))
					continue
				}
			}
			if g[KindPrev] {
				if err := os.Rename(name(KindPrev), path); err != nil {
					errs = append(errs, fmt.Errorf("atomicfile: recover %s: %w", path, err))
					continue
				}
				notes = append(notes, fmt.Sprintf("restored the previous %s (dead process %d had published over it and not finished its commit)", path, t.PID))
			} else {
				notes = append(notes, fmt.Sprintf("removed %s (dead process %d had published it and not finished its commit)", path, t.PID))
			}
			g[KindPrev] = false
		}
		for _, k := range []Kind{KindNew, KindTemp, KindPrev} {
			if !g[k] {
				continue
			}
			if err := os.RemoveAll(name(k)); err != nil {
				errs = append(errs, fmt.Errorf("atomicfile: recover %s: %w", path, err))
				continue
			}
			notes = append(notes, fmt.Sprintf("removed %s (left by dead process %d)", name(k), t.PID))
		}
	}
	if len(notes) > 0 {
		if err := syncDir(dir); err != nil {
			errs = append(errs, fmt.Errorf("atomicfile: recover %s: sync directory: %w", path, err))
		}
	}
	return notes, errors.Join(errs...)
}
