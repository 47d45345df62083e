package atomicfile

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Recover cleans up after the dead runs that wrote path: the processes that
// made files named after path (see FormatName) and no longer run, as Alive
// proves. For each such run it
//
//   - undoes a pending commit (a KindNew file that is still the file under
//     the final name): the KindPrev file goes back under the final name, or
//     the final name is removed if there was none before. A run that died
//     between Publish and Forget did not end well (it never said so), and
//     its previous file is the user's data: it is restored, never dropped;
//   - then removes its KindTemp, KindPrev and KindNew files.
//
// Files of live runs, of runs in another pid space (Foreign), of other
// final names and any file whose name does not parse are left alone. The
// returned notes say what was done, one line each, for a log. An error
// (joined, one per failure) leaves the files it concerns in place.
func Recover(path string) (notes []string, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return nil, fmt.Errorf("atomicfile: recover %s: not a file name", path)
	}
	groups, dead, err := deadRuns(path, dir, base)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(dead, func(a, b Tag) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.PID, b.PID), cmp.Compare(a.Rand, b.Rand))
	})
	name := func(t Tag, k Kind) string { return filepath.Join(dir, FormatName(base, t, k)) }
	var errs []error
	failed := map[Tag]bool{}
	// Undo the pending commits. Two dead runs may have published one over
	// the other (the later one's previous file is the earlier one's new
	// file): undo whichever is visible until none is, so each previous file
	// goes back in turn.
	for progress := true; progress; {
		progress = false
		for _, t := range dead {
			g := groups[t]
			if !g[KindNew] || failed[t] {
				continue
			}
			prev := ""
			if g[KindPrev] {
				prev = name(t, KindPrev)
			}
			undone, err := undo(path, prev, name(t, KindNew))
			if errors.Is(err, errReplaced) {
				continue // not visible (now): dropped below
			}
			if err != nil {
				failed[t] = true
				errs = append(errs, fmt.Errorf("atomicfile: recover %s: undo the commit of dead process %d: %w", path, t.PID, err))
				continue
			}
			g[KindNew] = false
			switch {
			case undone && prev != "":
				g[KindPrev] = false
				notes = append(notes, fmt.Sprintf("restored the previous %s (dead process %d had published over it and not finished its commit)", path, t.PID))
			case undone:
				notes = append(notes, fmt.Sprintf("removed %s (dead process %d had published it where no file was and not finished its commit)", path, t.PID))
			}
			progress = true
		}
	}
	for _, t := range dead {
		// After a failed undo, keep every pending commit's files: the
		// failed one may sit over another run's, whose previous file
		// would otherwise be dropped.
		if failed[t] || len(failed) > 0 && groups[t][KindNew] {
			continue
		}
		for _, k := range []Kind{KindNew, KindTemp, KindPrev} {
			if !groups[t][k] {
				continue
			}
			n := name(t, k)
			if err := os.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("atomicfile: recover %s: %w", path, err))
				continue
			}
			notes = append(notes, fmt.Sprintf("removed %s (left by dead process %d)", n, t.PID))
		}
	}
	if len(notes) > 0 {
		if err := syncDir(dir); err != nil {
			errs = append(errs, fmt.Errorf("atomicfile: recover %s: sync directory: %w", path, err))
		}
	}
	return notes, errors.Join(errs...)
}

// deadRuns reads dir for the files and trees named after base (see
// ParseName), grouped by the run that wrote them with the kinds each
// wrote, and returns them with the tags of the runs that are dead, in no
// order. A missing dir holds none.
func deadRuns(path, dir, base string) (map[Tag]map[Kind]bool, []Tag, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("atomicfile: recover %s: %w", path, err)
	}
	groups := map[Tag]map[Kind]bool{}
	for _, e := range ents {
		t, k, ok := ParseName(base, e.Name())
		if !ok {
			continue
		}
		if groups[t] == nil {
			groups[t] = map[Kind]bool{}
		}
		groups[t][k] = true
	}
	var dead []Tag
	for t := range groups {
		if Alive(t.Owner) == Dead {
			dead = append(dead, t)
		}
	}
	return groups, dead, nil
}
