//go:build linux

package mmap

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/io/storage"
)

// Name is the backend's registered name.
const Name = "mmap"

func init() {
	storage.Register(storage.Spec{
		Name:    Name,
		Summary: "read-only mapping of the whole file (MADV_SEQUENTIAL, MADV_WILLNEED); Arrow IPC files read with zero copies",
		Open: func(path string, flag int, perm os.FileMode, o storage.Options) (storage.File, error) {
			return Open(path, flag, perm, o)
		},
	})
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// File is a file read through a mapping of all of it, made at Open: a
// file that grows later is read to the size it had then.
type File struct {
	m     *Mapping
	name  string
	size  int64
	opts  storage.Options
	seq   int64
	stats storage.Counters

	closeOnce sync.Once
}

var _ storage.File = (*File)(nil)

// Open maps path read-only. Writing flags and direct: true are refused.
func Open(path string, flag int, perm os.FileMode, opts storage.Options) (*File, error) {
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0 {
		return nil, fmt.Errorf("mmap: open %s: the mmap backend only reads", path)
	}
	if opts.Direct {
		return nil, fmt.Errorf("mmap: open %s: direct: true is not possible with a mapping (it reads through the page cache)", path)
	}
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, storage.OpenError(Name, path, false, err)
	}
	defer f.Close() // the mapping keeps the pages; the descriptor is not needed
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mmap: stat %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("mmap: %s is not a regular file (%s)", path, st.Mode().Type())
	}
	m, err := newMapping(int(f.Fd()), st.Size(), path)
	if err != nil {
		return nil, err
	}
	return &File{m: m, name: path, size: st.Size(), opts: opts}, nil
}

func (f *File) Name() string             { return f.name }
func (f *File) Align() int               { return 1 }
func (f *File) Stats() storage.Stats     { return f.stats.Snapshot() }
func (f *File) Options() storage.Options { return f.opts }

// Size is the size the file had when it was mapped.
func (f *File) Size() (int64, error) { return f.size, nil }

// Mapping is the file's mapping; Retain it to keep it past Close.
func (f *File) Mapping() *Mapping { return f.m }

// ArrowBuffer is the mapping as an Arrow buffer, not retained for the
// caller (raw.Mapped): slices of it (memory.SliceBuffer) keep it mapped.
func (f *File) ArrowBuffer() *memory.Buffer { return f.m.Buffer() }

// Bytes is the whole mapped file, valid until Close (or longer, with the
// Mapping retained).
func (f *File) Bytes() []byte { return f.m.Bytes() }

// Close drops the file's reference to the mapping; it is unmapped when no
// adopted array holds one either.
func (f *File) Close() error {
	f.closeOnce.Do(f.m.Release)
	return nil
}

// ReadBatch copies each request's range out of the mapping (use Bytes or
// Adopt to read without the copy). Each copy is a "call" for a Fault hook,
// and its result is handled as posix handles a pread's: EINTR/EAGAIN
// retried, a short copy continued, nothing copied at the mapping's end.
func (f *File) ReadBatch(ctx context.Context, reqs []storage.Request) error {
	// A file truncated under its mapping faults (SIGBUS) where it is read
	// past the new end: turn that into an error on the request instead of
	// a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	for i := range reqs {
		if err := ctx.Err(); err != nil {
			for j := i; j < len(reqs); j++ {
				reqs[j].N, reqs[j].Err = 0, fmt.Errorf("mmap: read at %d of %s not started: %w", reqs[j].Off, f.name, err)
			}
			return err
		}
		r := &reqs[i]
		r.N, r.Err = f.guarded(r.Buf, r.Off)
		f.stats.Requests.Add(1)
		f.stats.Bytes.Add(int64(r.N))
	}
	return nil
}

// guarded is one with a memory fault (the file shrank) turned into an
// error.
func (f *File) guarded(buf []byte, off int64) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			// SetPanicOnFault's panics carry the faulting address
			if fe, ok := p.(interface{ Addr() uintptr }); ok {
				n, err = 0, fmt.Errorf("mmap: read %d bytes at %d of %s: the file shrank under its mapping (fault at %#x)", len(buf), off, f.name, fe.Addr())
				return
			}
			panic(p)
		}
	}()
	return f.one(buf, off)
}

func (f *File) one(buf []byte, off int64) (int, error) {
	seq := f.seq
	f.seq++
	if off < 0 {
		return 0, fmt.Errorf("mmap: read at negative offset %d of %s", off, f.name)
	}
	data := f.m.Bytes()
	done, attempt, retries := 0, 0, 0
	for done < len(buf) {
		at := off + int64(done)
		var n int
		var err error
		if at < int64(len(data)) {
			n = copy(buf[done:], data[at:])
		}
		f.stats.Calls.Add(1)
		if f.opts.Fault != nil {
			n, err = f.opts.Fault(storage.Call{Op: storage.OpRead, Seq: seq, Attempt: attempt, Off: at, Len: len(buf) - done}, n, err)
		}
		attempt++
		switch {
		case err != nil && storage.Transient(err):
			f.stats.Retries.Add(1)
			if retries++; retries > 1000 {
				return done, fmt.Errorf("mmap: read %d bytes at %d of %s: still %w after 1000 retries", len(buf)-done, at, f.name, err)
			}
			continue
		case err != nil:
			return done, fmt.Errorf("mmap: read %d bytes at %d of %s: %w", len(buf)-done, at, f.name, err)
		case n <= 0:
			return done, io.EOF
		}
		done += n
		if done < len(buf) {
			f.stats.Resubmit.Add(1)
		}
	}
	return done, nil
}

// WriteBatch fails: mappings are read-only.
func (f *File) WriteBatch(ctx context.Context, reqs []storage.Request) error {
	return fmt.Errorf("mmap: write %s: the mmap backend only reads", f.name)
}
