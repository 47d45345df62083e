package cxl

import (
	"fmt"
	"path/filepath"
	"sync"
)

// A process maps each segment once when it goes through Share: the cxl
// arena and the shm operators of one run then see the same mapping, so a
// buffer the arena allocated is found in the segment by the sink that
// publishes it (Segment.Contains), with no copy.
var shared = struct {
	sync.Mutex
	m map[string]*shareEntry
}{m: map[string]*shareEntry{}}

type shareEntry struct {
	seg  *Segment
	refs int
}

// Share opens the segment at path (as Open does with opts) or returns the
// mapping this process already has of it; the returned func gives the
// reference back, and the last one closes the segment.
func Share(path string, opts Options) (*Segment, func() error, error) {
	key, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("cxl: segment %s: %w", path, err)
	}
	shared.Lock()
	e := shared.m[key]
	if e == nil {
		// Open without the lock: it may wait (opts.Wait) for another
		// user of this process — a producer the consumer waits for — to
		// make the segment, and that one shares through this lock too.
		shared.Unlock()
		s, err := Open(path, opts)
		if err != nil {
			return nil, nil, err
		}
		shared.Lock()
		if e = shared.m[key]; e != nil {
			s.Close() // another user opened it meanwhile: share theirs
		} else {
			e = &shareEntry{seg: s}
			shared.m[key] = e
		}
	}
	e.refs++
	shared.Unlock()
	var once sync.Once
	var cerr error
	return e.seg, func() error {
		once.Do(func() {
			shared.Lock()
			defer shared.Unlock()
			if e.refs--; e.refs == 0 {
				delete(shared.m, key)
				cerr = e.seg.Close()
			}
		})
		return cerr
	}, nil
}
