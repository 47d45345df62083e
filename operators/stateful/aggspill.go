package stateful

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The aggregate's spill files, a minimal version of its own until the
// package's shared spill files (spill.go) take over: one directory per run
// under the system's temporary directory, one Arrow IPC stream per
// instance and partition, removed with the directory when the run's last
// instance is released — after success, failure or cancellation alike.

type spillDir struct {
	path  string
	mu    sync.Mutex
	files []*spillFile
}

func newSpillDir(prefix string) (*spillDir, error) {
	p, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	return &spillDir{path: p}, nil
}

// spillFile is one stream of batches of one schema, written, finished,
// then read back any number of times.
type spillFile struct {
	path  string
	f     *os.File
	buf   *bufio.Writer
	w     *ipc.Writer
	bytes int64
}

func (d *spillDir) create(name string, schema *arrow.Schema, mem memory.Allocator) (*spillFile, error) {
	p := filepath.Join(d.path, name+".arrows")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	sf := &spillFile{path: p, f: f, buf: bufio.NewWriterSize(f, 1<<20)}
	sf.w = ipc.NewWriter(sf.buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	d.mu.Lock()
	d.files = append(d.files, sf)
	d.mu.Unlock()
	return sf, nil
}

func (s *spillFile) write(b arrow.RecordBatch) error {
	if err := s.w.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	return nil
}

// finish ends the stream and closes the file.
func (s *spillFile) finish() error {
	if s.f == nil {
		return nil
	}
	err := s.w.Close()
	if err == nil {
		err = s.buf.Flush()
	}
	if st, serr := s.f.Stat(); serr == nil {
		s.bytes = st.Size()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err != nil {
		return fmt.Errorf("finish %s: %w", s.path, err)
	}
	return nil
}

// read calls fn with each batch of the finished file, borrowed for the
// call.
func (s *spillFile) read(mem memory.Allocator, fn func(arrow.RecordBatch) error) error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := ipc.NewReader(bufio.NewReaderSize(f, 1<<20), ipc.WithAllocator(mem))
	if err != nil {
		return fmt.Errorf("read %s: %w", s.path, err)
	}
	defer r.Release()
	for r.Next() {
		if err := fn(r.RecordBatch()); err != nil {
			return err
		}
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("read %s: %w", s.path, err)
	}
	return nil
}

// remove closes what is open and removes the directory.
func (d *spillDir) remove() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range d.files {
		if f.f != nil {
			f.w.Close()
			f.f.Close()
			f.f = nil
		}
	}
	os.RemoveAll(d.path)
}
