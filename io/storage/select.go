package storage

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
)

// Kinds are the values of a file operator's io: parameter.
var Kinds = []string{"auto", "uring", "posix", "mmap"}

// Facts are what auto decides on: the file system and device under a
// path (Probe reads them from statfs, /proc/self/mountinfo and
// /sys/dev/block).
type Facts struct {
	GOOS       string
	FSType     string // "tmpfs", "ext4", ...; "" when unknown
	Source     string // the mount's source ("/dev/vda", "tmpfs")
	Memory     bool   // the file system keeps files in memory (tmpfs, ramfs, hugetlbfs)
	Block      bool   // backed by a block device
	Device     string // the block device's name ("vda", "nvme0n1")
	Rotational bool
	// DeviceDepth is the device's request queue depth (queue/nr_requests);
	// 0 when unknown.
	DeviceDepth int
	// LogicalBlock is the device's logical block size; 0 when unknown.
	LogicalBlock int
	// MapSlower, for a file system in memory, says why reading a file
	// through a mapping was measured slower here than copying it (the
	// figures); "" when it was not, or was not measured (the file small or
	// not there yet).
	MapSlower string
}

func (f Facts) where() string {
	s := f.FSType
	if s == "" {
		s = "unknown file system"
	}
	if f.Device != "" {
		s += " on " + f.Device
	}
	return s
}

// Select picks the backend for path: kind is auto, uring, posix or mmap
// (empty means auto). An explicit kind is used or fails with the reason it
// cannot be (uring refused by the kernel, an unknown or unlinked backend);
// auto decides from the path's Facts and always says why, falling back to
// posix when the better backend is refused. The returned Backend's
// Options may differ from opts: auto drops Direct where the file system
// refuses O_DIRECT (tmpfs), and says so in the reason.
func Select(kind, path string, opts Options) (Backend, error) {
	facts, ferr := Probe(path)
	name, reason, o, err := Decide(kind, facts, opts, probeRegistered)
	if err != nil {
		return nil, err
	}
	if ferr != nil {
		reason += fmt.Sprintf(" (file system facts incomplete: %v)", ferr)
	}
	s, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	return &chosen{spec: s, opts: o, reason: reason}, nil
}

// errNotLinked is the availability of a backend this binary does not link.
var errNotLinked = errors.New("not linked into this binary (import its package)")

// refused are the backends Refuse made unavailable.
var (
	refusedMu sync.Mutex
	refused   = map[string]error{}
)

// Refuse makes Select and New treat the backend name as unable to run in
// this process, with err as the reason, until restore is called: tests
// play a machine that refuses io_uring (kernel.io_uring_disabled, seccomp)
// with it, through the real selection path.
func Refuse(name string, err error) (restore func()) {
	refusedMu.Lock()
	defer refusedMu.Unlock()
	old, had := refused[name]
	refused[name] = err
	return func() {
		refusedMu.Lock()
		defer refusedMu.Unlock()
		if had {
			refused[name] = old
		} else {
			delete(refused, name)
		}
	}
}

// probeRegistered is Decide's availability function over the registry.
func probeRegistered(name string) error {
	refusedMu.Lock()
	rerr := refused[name]
	refusedMu.Unlock()
	if rerr != nil {
		return rerr
	}
	s, err := Lookup(name)
	if err != nil {
		return errNotLinked
	}
	if s.Probe != nil {
		return s.Probe()
	}
	return nil
}

// Decide is Select's decision as a pure function of the facts, the options
// and avail (nil when the backend can run, else why not): it returns the
// backend's name, the reason, and the options to open with.
func Decide(kind string, f Facts, opts Options, avail func(name string) error) (name, reason string, o Options, err error) {
	o = opts
	if f.GOOS == "" {
		f.GOOS = runtime.GOOS
	}
	switch kind {
	case "uring", "posix", "mmap":
		if aerr := avail(kind); aerr != nil {
			return "", "", o, fmt.Errorf("storage: io: %s: %w", kind, aerr)
		}
		if kind == "mmap" && o.Write {
			return "", "", o, fmt.Errorf("storage: io: mmap only reads; a sink needs io: auto, posix or uring")
		}
		if kind == "mmap" && o.Direct {
			return "", "", o, fmt.Errorf("storage: io: mmap cannot read with direct: true (a mapping goes through the page cache)")
		}
		return kind, "asked for io: " + kind, o, nil
	case "", "auto":
	default:
		return "", "", o, fmt.Errorf("storage: unknown io kind %q (known: auto, uring, posix, mmap)", kind)
	}
	if f.GOOS != "linux" {
		return "posix", fmt.Sprintf("auto: only posix exists on %s (io_uring and the mmap backend are Linux-only)", f.GOOS), o, nil
	}
	if f.Memory {
		note := ""
		if o.Direct {
			o.Direct = false
			note = "; direct: true dropped: " + f.FSType + " has no device to bypass the page cache for (kernels before 6.6 refuse O_DIRECT on tmpfs)"
		}
		if o.WholeFile && !o.Write && avail("mmap") == nil {
			if f.MapSlower != "" {
				return "posix", "auto: " + f.where() + " keeps the file in memory and it is read whole, but " + f.MapSlower + ": pread, the kernel copies each page into the batch's buffer once" + note, o, nil
			}
			return "mmap", "auto: " + f.where() + " keeps the file in memory and it is read whole: mapping it reads with no copy" + note, o, nil
		}
		return "posix", "auto: " + f.where() + " keeps the file in memory: pread copies straight from the page cache, io_uring reads would be punted to io-wq threads and lose to it" + note, o, nil
	}
	if f.Block && o.Depth() > 1 && f.DeviceDepth != 1 {
		why := fmt.Sprintf("%s is a block device and queue_depth %d keeps it busy", f.where(), o.Depth())
		if uerr := avail("uring"); uerr != nil {
			return "posix", fmt.Sprintf("auto: %s, but io_uring is unavailable (%v): pread one request at a time", why, uerr), o, nil
		}
		return "uring", "auto: " + why + " with io_uring", o, nil
	}
	switch {
	case f.Block && f.DeviceDepth == 1:
		return "posix", fmt.Sprintf("auto: %s queues one request at a time: pread", f.where()), o, nil
	case f.Block:
		return "posix", fmt.Sprintf("auto: %s with queue_depth 1: pread", f.where()), o, nil
	}
	return "posix", fmt.Sprintf("auto: %s is not a local block device: pread", f.where()), o, nil
}
