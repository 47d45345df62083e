package cxl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/internal/atomicfile"
	"github.com/zflowdev/zflow/internal/units"
)

// Segment is an open, mapped segment. Its methods are safe for concurrent
// use.
type Segment struct {
	name    string
	f       *os.File
	fd      int
	mem     []byte
	hdr     Header
	backing Backing
	made    bool // this Open made the segment

	mu     sync.Mutex
	held   map[int]bool // participant slots this handle holds
	closed bool
}

// Lock bytes: fcntl OFD locks on these offsets (beyond any segment's end,
// which locks may be) serialise making the segment and tell live
// participants from dead ones. The kernel drops a process's locks when it
// dies, however it dies.
const (
	lockMake  = 1 << 52
	lockSlot0 = lockMake + 1
)

// Name is the path the segment was opened at.
func (s *Segment) Name() string { return s.name }

// Header is the segment's static header.
func (s *Segment) Header() Header { return s.hdr }

// Backing says what is behind the segment.
func (s *Segment) Backing() Backing { return s.backing }

// Made says whether this Open made the segment (rather than attaching to
// one another process made).
func (s *Segment) Made() bool { return s.made }

// Bytes is the whole mapping. It stays valid until Close.
func (s *Segment) Bytes() []byte { return s.mem }

// Generation is bumped each time a segment is made anew at this path or
// device.
func (s *Segment) Generation() uint64 { return s.u64(offGeneration).Load() }

func (s *Segment) u64(off int64) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&s.mem[off]))
}

func (s *Segment) u32(off int64) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&s.mem[off]))
}

// Open opens the segment at path (a device-DAX character device such as
// /dev/dax0.0, or a file on tmpfs or hugetlbfs), making it when opts say
// so, maps it shared and checks its header.
func Open(path string, opts Options) (*Segment, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	start := time.Now()
	deadline := start.Add(opts.Wait)
	for {
		s, err := open(path, opts, log)
		if err == nil {
			return s, nil
		}
		// The make lock is held for the instant of making or checking a
		// header: contention on it is always waited out a little, even
		// without Wait.
		if errors.Is(err, errMaking) && time.Since(start) < makeGrace {
			time.Sleep(time.Millisecond)
			continue
		}
		if !retryable(err) || !time.Now().Before(deadline) {
			if (errors.Is(err, fs.ErrNotExist) || errors.Is(err, errEmptyDevice)) && opts.Wait > 0 {
				return nil, fmt.Errorf("cxl: segment %s did not appear within %v: %w", path, opts.Wait, err)
			}
			return nil, err
		}
		time.Sleep(min(10*time.Millisecond, time.Until(deadline)))
	}
}

// retryable says whether Open may succeed later: the path is missing, the
// device holds no segment yet, or another process is making the segment.
func retryable(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, errEmptyDevice) || errors.Is(err, ErrNotReady) || errors.Is(err, errMaking)
}

var errMaking = errors.New("another process is making the segment")

// errEmptyDevice is a device or file whose header is all zero: never
// made, wiped (a device cannot be unlinked), or a file whose maker died
// between reserving its space and writing the header. It is a device's "no such file":
// one that waits for a segment waits for this to change. It comes wrapped
// with ErrNotSegment, which it also is.
var errEmptyDevice = errors.New("it holds no segment yet (its header is zero: never made, wiped, or its maker died making it)")

// makeGrace bounds how long Open waits out another opener's hold of the
// make lock when not asked to wait.
const makeGrace = 5 * time.Second

func open(path string, opts Options, log *slog.Logger) (_ *Segment, err error) {
	flags := os.O_RDWR | syscall.O_CLOEXEC
	if opts.Create {
		flags |= os.O_CREATE
	}
	perm := os.FileMode(0o600)
	if opts.Shared {
		perm = 0o660
	}
	f, err := os.OpenFile(path, flags, perm)
	if err != nil {
		return nil, fmt.Errorf("cxl: open segment: %w", err)
	}
	s := &Segment{name: path, f: f, held: map[int]bool{}}
	defer func() {
		if err != nil {
			s.unmap()
			f.Close()
		}
	}()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("cxl: segment %s: %w", path, err)
	}
	if cerr := rc.Control(func(fd uintptr) { s.fd = int(fd) }); cerr != nil {
		return nil, fmt.Errorf("cxl: segment %s: %w", path, cerr)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cxl: segment %s: %w", path, err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 && !opts.Shared {
		return nil, fmt.Errorf("cxl: segment %s has mode %#o: others may read or write it; zflow makes segments 0600 (chmod 600 %s, or say the segment is shared)", path, m, path)
	}
	size, align, err := s.probe(fi)
	if err != nil {
		return nil, err
	}
	// Attaching takes the make lock shared (attachers do not exclude one
	// another), making takes it exclusive.
	lockType := int16(unix.F_RDLCK)
	if opts.Create {
		lockType = unix.F_WRLCK
	}
	got, err := tryLockType(s.fd, lockMake, lockType)
	if err != nil {
		return nil, fmt.Errorf("cxl: segment %s: lock: %w", path, err)
	}
	if !got {
		return nil, fmt.Errorf("cxl: segment %s: %w", path, errMaking)
	}
	defer unlock(s.fd, lockMake)
	if size > 0 {
		if err := s.mmap(size); err != nil {
			return nil, err
		}
		s.hdr, err = DecodeHeader(path, s.mem, size)
		if err == nil {
			log.Debug("cxl: attached", "segment", path, "backing", s.backing, "size", size, "generation", s.Generation())
			return s, nil
		}
		// A segment nobody finished (its maker held the make lock, which
		// we now hold: the maker is dead), an empty device, or anything
		// else: only the first two may be made over.
		// A zero header is an empty device, or a file whose maker died
		// between reserving its space and writing the header.
		empty := allZero(s.mem[:min(StaticBytes, len(s.mem))])
		if empty && !opts.Create {
			return nil, fmt.Errorf("cxl: segment %s: %w (%w)", path, errEmptyDevice, ErrNotSegment)
		}
		if !opts.Create || !(errors.Is(err, ErrNotReady) || empty) {
			return nil, err
		}
		if errors.Is(err, ErrNotReady) {
			log.Warn("cxl: making a segment its maker left unfinished", "segment", path)
		} else if empty && s.backing != BackingDevDAX {
			log.Warn("cxl: making a segment whose maker died before writing its header", "segment", path)
		}
	} else if !opts.Create {
		return nil, fmt.Errorf("cxl: segment %s: %w", path, ErrNotReady)
	}
	if err := s.make(size, align, opts); err != nil {
		return nil, err
	}
	log.Info("cxl: made segment", "segment", path, "backing", s.backing, "size", s.hdr.Size, "align", s.hdr.Align, "generation", s.Generation())
	return s, nil
}

// probe finds the backing, the current size (0: an empty file) and the
// alignment of the file or device behind s.
func (s *Segment) probe(fi fs.FileInfo) (size, align int64, err error) {
	if fi.Mode()&fs.ModeCharDevice != 0 {
		s.backing = BackingDevDAX
		return daxGeometry(s.name, fi)
	}
	if !fi.Mode().IsRegular() {
		return 0, 0, fmt.Errorf("cxl: segment %s is a %s, not a file or a device-DAX device", s.name, fi.Mode().Type())
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(s.fd, &st); err != nil {
		return 0, 0, fmt.Errorf("cxl: segment %s: statfs: %w", s.name, err)
	}
	s.backing, align = BackingFile, minAlign
	if st.Type == unix.HUGETLBFS_MAGIC {
		s.backing, align = BackingHugetlbfs, int64(st.Bsize)
	}
	return fi.Size(), align, nil
}

// daxGeometry reads a device-DAX device's size and alignment from sysfs
// (/sys/dev/char/MAJ:MIN/{size,align}); an older kernel without align
// gets 2 MiB, device DAX's default.
func daxGeometry(name string, fi fs.FileInfo) (size, align int64, err error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("cxl: segment %s: no device number", name)
	}
	dir := fmt.Sprintf("/sys/dev/char/%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	if sub, err := filepath.EvalSymlinks(filepath.Join(dir, "subsystem")); err != nil || filepath.Base(sub) != "dax" {
		return 0, 0, fmt.Errorf("cxl: segment %s is a character device but not a device-DAX device (%s/subsystem is not dax)", name, dir)
	}
	read := func(attr string, def int64) (int64, error) {
		b, err := os.ReadFile(filepath.Join(dir, attr))
		if errors.Is(err, fs.ErrNotExist) && def > 0 {
			return def, nil
		}
		if err != nil {
			return 0, err
		}
		return strconv.ParseInt(strings.TrimSpace(string(b)), 0, 64)
	}
	if size, err = read("size", 0); err != nil {
		return 0, 0, fmt.Errorf("cxl: segment %s: device size: %w", name, err)
	}
	if align, err = read("align", 2<<20); err != nil {
		return 0, 0, fmt.Errorf("cxl: segment %s: device alignment: %w", name, err)
	}
	align = max(align, minAlign)
	return size / align * align, align, nil
}

// make lays out a new segment: reserves the file's space (so a full tmpfs
// or an empty hugepage pool is an error now, not a SIGBUS later), maps it,
// zeroes the tables, writes the header and stores its version last.
func (s *Segment) make(size, align int64, opts Options) error {
	var oldGen uint64
	if len(s.mem) >= offGeneration+8 {
		oldGen = binary.LittleEndian.Uint64(s.mem[offGeneration:])
	}
	if s.backing == BackingDevDAX && opts.Size > size {
		return fmt.Errorf("cxl: make segment %s of %s: the device has %s (a segment on a device takes the whole device: ask for at most that)",
			s.name, units.Bytes(opts.Size), units.Bytes(size))
	}
	if s.backing != BackingDevDAX {
		if opts.Size <= 0 {
			return fmt.Errorf("cxl: make segment %s: no size given", s.name)
		}
		size = (opts.Size + align - 1) / align * align
		if s.mem != nil {
			s.unmap()
		}
		if err := unix.Ftruncate(s.fd, 0); err != nil {
			return fmt.Errorf("cxl: make segment %s: truncate: %w", s.name, err)
		}
		if err := unix.Fallocate(s.fd, 0, 0, size); err != nil {
			return fmt.Errorf("cxl: make segment %s of %d bytes: reserve: %w%s", s.name, size, err, spaceHint(s.backing, err))
		}
		if err := s.mmap(size); err != nil {
			return err
		}
	}
	h, err := Layout(size, align, 0)
	if err != nil {
		return err
	}
	me, _ := atomicfile.Self()
	h.Backing = s.backing
	h.CreatorPID, h.CreatorStart, h.CreatorBoot, h.CreatorSpace = me.PID, me.Start, me.Boot, me.Space
	h.CreatedNano = time.Now().UnixNano()
	var hb [StaticBytes]byte
	h.Encode(hb[:])
	s.u32(offVersion).Store(0)
	clear(s.mem[:h.DataOff])
	copy(s.mem[:offVersion], hb[:offVersion])
	copy(s.mem[offVersion+4:StaticBytes], hb[offVersion+4:])
	s.u64(offGeneration).Store(oldGen + 1)
	s.u32(offVersion).Store(Version)
	s.hdr, s.made = h, true
	return nil
}

func spaceHint(b Backing, err error) string {
	if !errors.Is(err, unix.ENOSPC) {
		return ""
	}
	if b == BackingHugetlbfs {
		return " (not enough free hugepages: raise /proc/sys/vm/nr_hugepages)"
	}
	return " (the file system is full: see df)"
}

func (s *Segment) mmap(size int64) error {
	if size <= 0 || int64(int(size)) != size {
		return fmt.Errorf("cxl: segment %s: cannot map %d bytes", s.name, size)
	}
	mem, err := unix.Mmap(s.fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("cxl: segment %s: map %d bytes: %w", s.name, size, err)
	}
	s.mem = mem
	return nil
}

func (s *Segment) unmap() {
	if s.mem != nil {
		unix.Munmap(s.mem)
		s.mem = nil
	}
}

// Close detaches every participant this handle holds, unmaps the segment
// and closes its file. Arrays built over the mapping must not be used
// after Close.
func (s *Segment) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	slots := make([]int, 0, len(s.held))
	for i := range s.held {
		slots = append(slots, i)
	}
	s.mu.Unlock()
	for _, i := range slots {
		s.freeSlot(i)
	}
	s.unmap()
	return s.f.Close()
}

// Remove closes s and removes its file. A device cannot be unlinked: its
// header is wiped instead (see wipe), so that the next Open that may
// create makes a segment anew on it. Processes that still map the segment
// keep their mapping.
func (s *Segment) Remove() error {
	if s.backing == BackingDevDAX {
		return errors.Join(s.discard(), s.Close())
	}
	if err := s.Close(); err != nil {
		return err
	}
	return s.discard()
}

// discard removes the segment's file, or wipes a device's header.
func (s *Segment) discard() error {
	if s.backing == BackingDevDAX {
		return s.wipe()
	}
	if err := os.Remove(s.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cxl: remove segment: %w", err)
	}
	return nil
}

// wipe makes the segment no segment any more, for a device, which cannot
// be truncated or unlinked: the version first (a reader that sees no
// version sees an unfinished segment), then the rest of the static header,
// so Open finds no magic (ErrNotSegment) and, asked to create, makes the
// segment anew. The generation word stays, so the next segment made there
// gets the next generation. The make lock is held throughout, so no Open
// reads the header meanwhile; a process attached since the caller looked
// is an error, and nothing is wiped.
func (s *Segment) wipe() error {
	got, err := tryLock(s.fd, lockMake)
	if err != nil {
		return fmt.Errorf("cxl: wipe segment %s: lock: %w", s.name, err)
	}
	if !got {
		return fmt.Errorf("cxl: wipe segment %s: %w", s.name, errMaking)
	}
	defer unlock(s.fd, lockMake)
	ps, err := s.Participants()
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.Alive {
			return fmt.Errorf("cxl: wipe segment %s: pid %d attached meanwhile (slot %d)", s.name, p.PID, p.Slot)
		}
	}
	s.u32(offVersion).Store(0)
	clear(s.mem[:StaticBytes])
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// tryLock takes a write lock on byte off of fd's open file description
// without waiting; false when another description holds it.
func tryLock(fd int, off int64) (bool, error) { return tryLockType(fd, off, unix.F_WRLCK) }

// tryLockType takes a lock of type typ (F_RDLCK or F_WRLCK) on byte off.
func tryLockType(fd int, off int64, typ int16) (bool, error) {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: off, Len: 1}
	for {
		err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
		switch err {
		case nil:
			return true, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EACCES:
			return false, nil
		}
		return false, err
	}
}

func unlock(fd int, off int64) {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: off, Len: 1}
	unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
}

// lockedByOther says whether another open file description holds a lock
// on byte off (F_OFD_GETLK ignores this description's own locks).
func lockedByOther(fd int, off int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		return false, err
	}
	return lk.Type != unix.F_UNLCK, nil
}
