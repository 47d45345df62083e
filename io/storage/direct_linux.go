//go:build linux

package storage

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// ODirect is O_DIRECT where it exists (0 elsewhere).
const ODirect = unix.O_DIRECT

// DirectAlign is the alignment O_DIRECT requests on fd need: statx's
// STATX_DIOALIGN (Linux 6.1+: the larger of the memory and offset
// alignments), else the device's logical block size from facts, else 512.
func DirectAlign(fd int, facts Facts) int {
	var sx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &sx); err == nil &&
		sx.Mask&unix.STATX_DIOALIGN != 0 && sx.Dio_offset_align > 0 {
		return int(max(sx.Dio_mem_align, sx.Dio_offset_align))
	}
	if facts.LogicalBlock > 0 {
		return facts.LogicalBlock
	}
	return 512
}

// OpenError explains a failed open: with O_DIRECT on a file system that
// refuses it (EINVAL: tmpfs), it names the file system.
func OpenError(backend, path string, direct bool, err error) error {
	if direct && errors.Is(err, syscall.EINVAL) {
		f, _ := Probe(path)
		fs := f.FSType
		if fs == "" {
			fs = "this file system"
		}
		return fmt.Errorf("%s: open %s with O_DIRECT: %w (%s refuses O_DIRECT; use direct: false or io: auto, which drops it there)", backend, path, err, fs)
	}
	return fmt.Errorf("%s: open %s: %w", backend, path, err)
}

// Transient says whether a call's error is retried: EINTR and EAGAIN.
func Transient(err error) bool {
	return errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN)
}
