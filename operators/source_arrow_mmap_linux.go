package operators

import (
	"context"
	"fmt"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/mmap"
)

// runMapped reads input fi, an Arrow IPC file, through io/mmap with zero
// copies: the batches' arrays point into the mapping (which stays mapped
// until the last of them is released), and the ledger counts their bytes
// as passed by reference. A file mmap cannot read without copies (one
// with dictionaries) is read out of the mapping with copies, counted so.
func (s *arrowSource) runMapped(ctx context.Context, fi, unit int, out engine.Emitter) (bool, error) {
	path := s.f.files.name(fi)
	x, err := mmap.OpenIPC(path, s.ic.Alloc)
	if err != nil {
		return true, fmt.Errorf("arrow: %w", err)
	}
	defer x.Close()
	if err := sameColumns(s.f.allFile, x.Schema()); err != nil {
		return true, fmt.Errorf("arrow: %s: the file has changed since compile: %w", path, err)
	}
	zero, why := x.ZeroCopy()
	if !zero && s.ic.Logger != nil {
		s.ic.Logger.Info("arrow: "+path+" is read out of its mapping with copies", "why", why)
	}
	for i := 0; i < x.NumRecords(); i++ {
		if !s.ic.Mine(unit + i) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return true, err
		}
		rec, err := x.Record(i)
		if err != nil {
			return true, fmt.Errorf("arrow: read %s: batch %d: %w", path, i, err)
		}
		// The next record this instance reads is mapped in while this one
		// is checked and emitted.
		for j := i + 1; j < x.NumRecords(); j++ {
			if s.ic.Mine(unit + j) {
				x.Prefetch(j)
				break
			}
		}
		if zero {
			s.ic.Ledger.Referenced(refMapped, engine.BatchBytes(rec))
		} else {
			s.ic.Ledger.Copied("copied out of a mapped file ("+why+")", engine.BatchBytes(rec))
		}
		if stop, err := s.emit(rec, fi, i, out); stop {
			return true, err
		}
	}
	return false, nil
}
