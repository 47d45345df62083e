package cxl

import (
	"errors"
	"log/slog"
	"time"
)

// Options says how to open a segment.
type Options struct {
	// Create makes the segment when the path does not exist, is an empty
	// file, or holds a segment whose maker died before finishing it. A
	// device is made when it holds no segment yet (its first bytes are
	// zero). Without Create, Open only attaches.
	Create bool
	// Size is the size of a segment made in a file, rounded up to the
	// alignment. A device's size is its own: a Size larger than the
	// device is an error when making a segment on it.
	Size int64
	// Wait is how long Open waits for the path to appear and for the
	// segment to be made by another process; 0 does not wait.
	Wait time.Duration
	// Shared accepts (and makes) segments that other users may read or
	// write; without it a segment whose mode gives the group or others any
	// access is refused.
	Shared bool
	// Logger receives what Open decided and why (nil: slog.Default()).
	Logger *slog.Logger
}

// ErrUnsupported is wrapped by Open's error where segments cannot be
// mapped (not Linux).
var ErrUnsupported = errors.New("shared segments need Linux (mmap MAP_SHARED, fcntl OFD locks)")
