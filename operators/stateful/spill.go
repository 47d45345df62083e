package stateful

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/storage"

	_ "github.com/zflowdev/zflow/io/posix" // the backend every platform has
)

// This file holds spill files, the shared machinery of every operator
// that writes out state that does not fit its budget: sort's sorted runs
// now, the hash operators' partitions next.
//
// A Spiller belongs to one operator instance. Its first Create makes the
// instance's directory, zflow-spill-<pid>-<node>-<random> under
// settings.spill.dir (the OS temporary directory by default); each run is
// one file in it, an Arrow IPC stream (uncompressed by default: on tmpfs
// and page cache the codec costs more than the bytes it saves — see
// docs/operators.md's sort section for the figures), written and read
// through the storage backend settings.spill.io chooses, like a file
// sink's output. Close removes the directory and everything in it; the
// operator calls it from Release, which the engine calls whatever
// happened, so no spill file outlives its run — success, failure or
// cancellation.
//
// The tier is the file system. DESIGN puts a CXL segment or a memory-only
// NUMA node before it when one is configured: such a tier would implement
// runStore (create, open, remove) over segment extents and be chosen in
// NewSpiller; the operators see only Spiller, RunWriter and RunReader.

// runStore is a spill tier: where run files are made, read and removed.
type runStore interface {
	create(ctx context.Context, name string) (io.WriteCloser, error)
	open(ctx context.Context, name string) (io.ReadCloser, error)
	remove(name string) error
	// close removes everything the store made.
	close() error
	describe() string
}

// Spiller writes and reads back the runs of one operator instance.
type Spiller struct {
	ic    *engine.InstanceContext
	mem   memory.Allocator
	cfg   engine.SpillSettings
	node  string
	fault storage.Fault // tests: wraps every syscall of the spill files

	// MaxBatchBytes, when not 0, caps the bytes of a batch written to a
	// run: a larger one is written as slices of fewer rows, so that
	// reading it back takes no more than that at once.
	MaxBatchBytes int64

	mu    sync.Mutex
	store runStore // made by the first Create
	seq   int
	live  map[string]bool
}

// NewSpiller returns the spiller of an instance; it makes nothing on disk
// until the first Create. mem is what read-back batches are allocated
// from (the operator's account).
func NewSpiller(ic *engine.InstanceContext, mem memory.Allocator) *Spiller {
	s := &Spiller{ic: ic, mem: mem, live: map[string]bool{}}
	if ic != nil {
		s.cfg, s.node = ic.Settings.Spill, ic.Node
	}
	return s
}

// SpillBase is the directory spill directories are made in.
func SpillBase(cfg engine.SpillSettings) string {
	if cfg.Dir != "" {
		return cfg.Dir
	}
	return os.TempDir()
}

// DescribeSpill is the plan's line for an operator that may spill what
// (e.g. "sorted runs") under cfg.
func DescribeSpill(what string, cfg engine.SpillSettings) string {
	comp := cfg.Compression
	if comp == "" || comp == "none" {
		comp = "uncompressed"
	}
	io := cfg.IO
	if io == "" {
		io = "auto"
	}
	return fmt.Sprintf("may spill %s to %s as Arrow IPC (%s), io: %s",
		what, filepath.Join(SpillBase(cfg), "zflow-spill-<pid>-<node>-…"), comp, io)
}

// ipcOptions are the writer options of the configured compression.
func ipcOptions(cfg engine.SpillSettings) ([]ipc.Option, error) {
	switch cfg.Compression {
	case "", "none":
		return nil, nil
	case "lz4":
		return []ipc.Option{ipc.WithLZ4()}, nil
	case "zstd":
		return []ipc.Option{ipc.WithZstd()}, nil
	}
	return nil, fmt.Errorf("spill: unknown compression %q (none, lz4, zstd)", cfg.Compression)
}

func (s *Spiller) storeFor() (runStore, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store != nil {
		return s.store, nil
	}
	st, err := newFileStore(s.ic, s.cfg, s.node, s.fault)
	if err != nil {
		return nil, err
	}
	s.store = st
	return st, nil
}

// Run is a spilled run: its file and what it holds.
type Run struct {
	name          string
	Rows, Batches int64
	Bytes         int64 // bytes written to the file
}

// Create starts a new run of batches of schema.
func (s *Spiller) Create(ctx context.Context, schema *arrow.Schema) (*RunWriter, error) {
	st, err := s.storeFor()
	if err != nil {
		return nil, err
	}
	opts, err := ipcOptions(s.cfg)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.seq++
	name := fmt.Sprintf("run-%06d.arrows", s.seq)
	s.live[name] = true
	s.mu.Unlock()
	start := time.Now()
	f, err := st.create(ctx, name)
	if err != nil {
		s.forget(name)
		return nil, err
	}
	cw := &countWriter{w: bufio.NewWriterSize(f, 1<<20)}
	w := &RunWriter{s: s, f: f, cw: cw, run: &Run{name: name}, took: time.Since(start)}
	w.w = ipc.NewWriter(cw, append(opts, ipc.WithSchema(schema), ipc.WithAllocator(s.mem))...)
	return w, nil
}

// WriteRun makes a run of the batches fill hands to emit (which takes
// ownership of each): the run is finished when fill returns nil, and
// dropped, file and all, when fill or a write fails.
func (s *Spiller) WriteRun(ctx context.Context, schema *arrow.Schema, fill func(emit func(arrow.RecordBatch) error) error) (*Run, error) {
	w, err := s.Create(ctx, schema)
	if err != nil {
		return nil, err
	}
	err = fill(func(b arrow.RecordBatch) error {
		defer b.Release()
		return w.Write(b)
	})
	if err != nil {
		w.Abort()
		return nil, err
	}
	return w.Finish()
}

func (s *Spiller) forget(name string) {
	s.mu.Lock()
	delete(s.live, name)
	st := s.store
	s.mu.Unlock()
	if st != nil {
		st.remove(name)
	}
}

// Remove deletes a run's file (merged, no longer needed).
func (s *Spiller) Remove(r *Run) {
	if r != nil {
		s.forget(r.name)
	}
}

// Close removes every file and the directory the spiller made. Safe to
// call more than once, and on a spiller that made nothing.
func (s *Spiller) Close() error {
	s.mu.Lock()
	st := s.store
	s.store = nil
	s.live = map[string]bool{}
	s.mu.Unlock()
	if st == nil {
		return nil
	}
	return st.close()
}

// Live is how many run files exist now.
func (s *Spiller) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// Dir is the directory the spiller made, "" before the first Create.
func (s *Spiller) Dir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store == nil {
		return ""
	}
	return s.store.describe()
}

// RunWriter writes one run. Write batches in order, then Finish; Abort
// (safe after Finish) drops a run that will not be finished.
type RunWriter struct {
	s    *Spiller
	f    io.WriteCloser
	cw   *countWriter
	w    *ipc.Writer
	run  *Run
	took time.Duration
	done bool
}

// Write appends rec (borrowed) to the run: in slices of at most the
// spiller's MaxBatchBytes (counted at rec's bytes a row).
func (w *RunWriter) Write(rec arrow.RecordBatch) error {
	n := rec.NumRows()
	step := n
	if limit := w.s.MaxBatchBytes; limit > 0 && n > 1 {
		if b := engine.BatchBytes(rec); b > limit {
			step = max(n*limit/b, 1)
		}
	}
	if step >= n {
		return w.write(rec)
	}
	for off := int64(0); off < n; off += step {
		part := rec.NewSlice(off, min(off+step, n))
		err := w.write(part)
		part.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *RunWriter) write(rec arrow.RecordBatch) error {
	start := time.Now()
	err := w.w.Write(rec)
	w.took += time.Since(start)
	if err != nil {
		return fmt.Errorf("spill: write %s: %w", w.run.name, err)
	}
	w.run.Rows += rec.NumRows()
	w.run.Batches++
	return nil
}

// Finish closes the run's file and returns the run; it counts the file,
// its bytes and the time spent writing it on the instance (CountSpill).
func (w *RunWriter) Finish() (*Run, error) {
	start := time.Now()
	err := w.w.Close()
	if err == nil {
		err = w.cw.w.(*bufio.Writer).Flush()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.done = true
	w.took += time.Since(start)
	if err != nil {
		w.s.forget(w.run.name)
		return nil, fmt.Errorf("spill: finish %s: %w", w.run.name, err)
	}
	w.run.Bytes = w.cw.n
	w.s.ic.CountSpill(w.cw.n, 1, w.took)
	return w.run, nil
}

// Abort drops the run and its file.
func (w *RunWriter) Abort() {
	if !w.done {
		w.w.Close()
		w.f.Close()
		w.done = true
	}
	w.s.forget(w.run.name)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// RunReader reads a run back, batch by batch.
type RunReader struct {
	s    *Spiller
	f    io.ReadCloser
	r    *ipc.Reader
	name string
}

// Open starts reading run r.
func (s *Spiller) Open(ctx context.Context, r *Run) (*RunReader, error) {
	st, err := s.storeFor()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	f, err := st.open(ctx, r.name)
	if err != nil {
		return nil, err
	}
	rd, err := ipc.NewReader(bufio.NewReaderSize(f, 1<<20), ipc.WithAllocator(s.mem))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spill: read %s: %w", r.name, err)
	}
	s.ic.CountSpill(0, 0, time.Since(start))
	return &RunReader{s: s, f: f, r: rd, name: r.name}, nil
}

// Next returns the run's next batch, which the caller owns (Release it),
// or io.EOF after the last.
func (rr *RunReader) Next() (arrow.RecordBatch, error) {
	start := time.Now()
	defer func() { rr.s.ic.CountSpill(0, 0, time.Since(start)) }()
	if rr.r.Next() {
		rec := rr.r.RecordBatch()
		rec.Retain()
		return rec, nil
	}
	if err := rr.r.Err(); err != nil && !errors.Is(err, io.EOF) {
		// arrow's reader reports a budget refusal as invalid metadata.
		var be *buffers.BudgetError
		if errors.As(err, &be) {
			err = be
		}
		return nil, fmt.Errorf("spill: read %s: %w", rr.name, err)
	}
	return nil, io.EOF
}

// Close ends the reading (the file stays until Remove or Close of the
// spiller).
func (rr *RunReader) Close() {
	rr.r.Release()
	rr.f.Close()
}

// fileStore is the file tier: one directory per instance.
type fileStore struct {
	dir     string
	backend storage.Backend
}

func newFileStore(ic *engine.InstanceContext, cfg engine.SpillSettings, node string, fault storage.Fault) (*fileStore, error) {
	base := SpillBase(cfg)
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("spill: make %s: %w", base, err)
	}
	dir, err := os.MkdirTemp(base, fmt.Sprintf("zflow-spill-%d-%s-", os.Getpid(), safeName(node)))
	if err != nil {
		return nil, fmt.Errorf("spill: make a directory in %s: %w", base, err)
	}
	b, err := storage.Select(cfg.IO, dir, storage.Options{Write: true, Fault: fault})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("spill: io %q for %s: %w", cfg.IO, dir, err)
	}
	if ic != nil && ic.Logger != nil {
		ic.Logger.Info("spilling", "dir", dir, "io", b.Name(), "reason", b.Reason())
	}
	return &fileStore{dir: dir, backend: b}, nil
}

// safeName keeps a node id usable in a file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator || r < ' ' {
			return '_'
		}
		return r
	}, s)
}

func (fs *fileStore) describe() string { return fs.dir }

func (fs *fileStore) create(ctx context.Context, name string) (io.WriteCloser, error) {
	p := filepath.Join(fs.dir, name)
	f, err := fs.backend.Open(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spill: create %s: %w", p, err)
	}
	return &fileWriter{ctx: ctx, f: f}, nil
}

func (fs *fileStore) open(ctx context.Context, name string) (io.ReadCloser, error) {
	p := filepath.Join(fs.dir, name)
	f, err := fs.backend.Open(p, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("spill: open %s: %w", p, err)
	}
	return fileReader{Reader: storage.NewReader(ctx, f), f: f}, nil
}

func (fs *fileStore) remove(name string) error { return os.Remove(filepath.Join(fs.dir, name)) }

func (fs *fileStore) close() error {
	if err := os.RemoveAll(fs.dir); err != nil {
		return fmt.Errorf("spill: remove %s: %w", fs.dir, err)
	}
	return nil
}

// fileWriter writes a backend file front to back, one request per Write
// (the bufio.Writer above makes them 1 MiB).
type fileWriter struct {
	ctx context.Context
	f   storage.File
	off int64
}

func (w *fileWriter) Write(p []byte) (int, error) {
	req := [1]storage.Request{{Buf: p, Off: w.off}}
	err := w.f.WriteBatch(w.ctx, req[:])
	if err == nil {
		err = req[0].Err
	}
	w.off += int64(req[0].N)
	if err != nil {
		return req[0].N, fmt.Errorf("spill: write %s: %w", w.f.Name(), err)
	}
	return len(p), nil
}

func (w *fileWriter) Close() error { return w.f.Close() }

type fileReader struct {
	*storage.Reader
	f storage.File
}

func (r fileReader) Close() error { return r.f.Close() }
