package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Publish is phase two of the run's commit: winners[i] names the attempt
// of worker index i whose output is the run's (the one that succeeded).
// For every sink it gathers those attempts' parts into one directory,
// part-00000… in index order, and renames it over the sink's path (what
// was there before is removed once every sink is in place); then it
// leaves the rest of the staging directories (other attempts' parts,
// what was replaced) to Discard, which the caller runs once no worker can
// write there any more. If a sink cannot be published, those published
// before it are put back as they were and the error says so; an error
// means nothing was published.
func (j *Job) Publish(winners []string) error {
	if len(winners) != j.Workers {
		return fmt.Errorf("cluster: publish: %d winning attempts for %d workers", len(winners), j.Workers)
	}
	type done struct {
		s    SinkPart
		prev string // what was at s.Path, moved aside; "" if nothing
	}
	var published []done
	undo := func(cause error) error {
		errs := []error{cause}
		for k := len(published) - 1; k >= 0; k-- {
			d := published[k]
			if err := os.RemoveAll(d.s.Path); err != nil {
				errs = append(errs, fmt.Errorf("cluster: publish: undo sink %s: %w", d.s.ID, err))
				continue
			}
			if d.prev != "" {
				if err := os.Rename(d.prev, d.s.Path); err != nil {
					errs = append(errs, fmt.Errorf("cluster: publish: put back what was at %s: %w", d.s.Path, err))
				}
			}
		}
		return errors.Join(errs...)
	}
	for _, s := range j.Sinks {
		root := filepath.Join(j.stageRoot(s), s.ID)
		out := filepath.Join(root, "out")
		if err := os.Mkdir(out, 0o755); err != nil {
			return undo(fmt.Errorf("cluster: publish sink %s: %w", s.ID, err))
		}
		for i, a := range winners {
			from := filepath.Join(root, a, partName(s, i))
			if err := os.Rename(from, filepath.Join(out, partName(s, i))); err != nil {
				return undo(fmt.Errorf("cluster: publish sink %s: worker %d's part (attempt %s): %w", s.ID, i, a, err))
			}
		}
		d := done{s: s}
		if _, err := os.Lstat(s.Path); err == nil {
			d.prev = filepath.Join(root, "previous")
			if err := os.Rename(s.Path, d.prev); err != nil {
				return undo(fmt.Errorf("cluster: publish sink %s: move aside what is at %s: %w", s.ID, s.Path, err))
			}
		}
		if err := os.Rename(out, s.Path); err != nil {
			if d.prev != "" {
				_ = os.Rename(d.prev, s.Path)
			}
			return undo(fmt.Errorf("cluster: publish sink %s at %s: %w", s.ID, s.Path, err))
		}
		published = append(published, d)
	}
	return nil
}

// Discard removes the run's staging directories: everything its workers
// wrote that was not published, and what Publish replaced. The
// coordinator calls it when no worker of the run is left to write there:
// after Publish, or instead of it when the run failed.
func (j *Job) Discard() error {
	var errs []error
	seen := map[string]bool{}
	for _, s := range j.Sinks {
		r := j.stageRoot(s)
		if seen[r] {
			continue
		}
		seen[r] = true
		if err := os.RemoveAll(r); err != nil {
			errs = append(errs, fmt.Errorf("cluster: remove staging %s: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

// Stale lists the staging directories of other runs next to the job's
// sinks (left by a coordinator that died before it published or
// discarded), for the caller to report or remove.
func (j *Job) Stale() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range j.Sinks {
		dir := filepath.Dir(s.Path)
		if seen[dir] {
			continue
		}
		seen[dir] = true
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.IsDir() && strings.HasPrefix(e.Name(), StagePrefix) && e.Name() != StagePrefix+j.RunID {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	return out
}

// DiscardAttempt removes what one attempt of a worker staged (an epoch
// the coordinator aborted, or one whose coordinator is gone), and the
// run's staging directories if that left them empty.
func (j *Job) DiscardAttempt(attempt string) error {
	var errs []error
	for _, s := range j.Sinks {
		dir := filepath.Join(j.stageRoot(s), s.ID, attempt)
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("cluster: %w", err))
			continue
		}
		// Only when empty: other workers may still be staging there.
		_ = os.Remove(filepath.Dir(dir))
		_ = os.Remove(j.stageRoot(s))
	}
	return errors.Join(errs...)
}
