package operators

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/storage"

	_ "github.com/zflowdev/zflow/io/mmap"  // registers the mmap backend (Linux)
	_ "github.com/zflowdev/zflow/io/posix" // registers the posix backend
)

// FileIO are the storage parameters every file source and sink shares:
// which backend of io/storage its files go through (io/uring links only
// into binaries that import it: cmd/zflow does), O_DIRECT, and how many
// requests the backend keeps in flight. Embedded without a tag, its
// parameters are the operator's own (engine.Params).
type FileIO struct {
	IO         string `zflow:"io" enum:"auto,uring,posix,mmap" doc:"the storage backend the files are read or written through: auto decides per file from its file system and device (mmap for a whole-file read on tmpfs unless mapping pages in was measured slower than copying them on this machine, uring on a block device with queue_depth above 1, else posix) and says why in zflow plan, the run summary and the zflow.io.backend span attributes; uring, posix and mmap force one (an error if it cannot run here, e.g. io_uring refused; mmap only reads)"`
	Direct     bool   `zflow:"direct" doc:"open with O_DIRECT, bypassing the page cache, where the file system allows it: with io: auto it is dropped, and the reason says so, on a file system that refuses it (tmpfs); with an explicit io: it is then an error"`
	QueueDepth int    `zflow:"queue_depth" doc:"requests the backend keeps in flight (io_uring's ring size; the read-ahead of text sources, up to 4 chunks of 1 MiB); 0 means 32"`
}

// defaultFileIO is FileIO's value in NewConfig.
func defaultFileIO() FileIO { return FileIO{IO: "auto"} }

// check validates the parameters.
func (c FileIO) check() error {
	var errs []error
	switch c.IO {
	case "", "auto", "uring", "posix", "mmap":
	default:
		errs = append(errs, engine.Errf("io", "want auto, uring, posix or mmap, got %q", c.IO))
	}
	if c.QueueDepth < 0 {
		errs = append(errs, engine.Errf("queue_depth", "must be ≥ 0 (0 means %d), got %d", storage.DefaultQueueDepth, c.QueueDepth))
	}
	return errors.Join(errs...)
}

// ioUse says how an operator uses a file, for the choice of backend.
type ioUse struct {
	write bool // a sink: never mmap
	whole bool // read whole, front to back (Arrow IPC files): mmap on tmpfs
}

// choose selects the backend for path (storage.Select). An explicit io:
// that cannot run, or an explicit one with direct: true on a file system
// that refuses O_DIRECT (tried by opening the file, when it exists), is an
// error at param io or direct.
func (c FileIO) choose(path string, use ioUse) (storage.Backend, error) {
	opts := storage.Options{Direct: c.Direct, QueueDepth: c.QueueDepth, WholeFile: use.whole, Write: use.write}
	b, err := storage.Select(c.IO, path, opts)
	if err != nil {
		return nil, engine.Errf("io", "%s: %v", path, err)
	}
	if b.Options().Direct && !use.write {
		f, err := b.Open(path, os.O_RDONLY, 0)
		if err != nil {
			if _, serr := os.Stat(path); serr == nil {
				return nil, engine.Errf("direct", "%v", err)
			}
			return b, nil // the file is not there: the source says so
		}
		f.Close()
	}
	return b, nil
}

// ioReason is why b was chosen, after what it was opened with (O_DIRECT,
// io_uring's queue depth): the zflow.io.backend.reason attribute.
func ioReason(b storage.Backend) string {
	var with string
	if b.Options().Direct {
		with = "O_DIRECT; "
	}
	if b.Name() == "uring" {
		with = fmt.Sprintf("%squeue depth %d; ", with, b.Options().Depth())
	}
	return with + b.Reason()
}

// ioLine is a backend's line in the plan: "uring (queue depth 32; auto: ...)".
func ioLine(b storage.Backend) string { return b.Name() + " (" + ioReason(b) + ")" }

// describeIO is the plan's io line for the backends of a file set's files
// (nil entries, standard input, are skipped): one line when every file has
// the same backend and reason, else the first with how many differ.
func describeIO(bs []storage.Backend) string {
	var first storage.Backend
	other := 0
	for _, b := range bs {
		switch {
		case b == nil:
		case first == nil:
			first = b
		case ioLine(b) != ioLine(first):
			other++
		}
	}
	if first == nil {
		return ""
	}
	if other > 0 {
		return fmt.Sprintf("%s; %d other files differ (see the run summary)", ioLine(first), other)
	}
	return ioLine(first)
}

// stdioReason is why standard input and output (path -) use no storage
// backend: the plan's and the summary's "io: stdio (...)".
const stdioReason = "standard input or output is a stream the run is handed, not a file a storage backend opens: package os reads or writes it"

// stdioLine is the plan's io line of a node on standard input or output.
const stdioLine = "stdio (" + stdioReason + ")"

// fileBackend records on the instance's span and in the run summary which
// backend a file goes through, and why (nil: standard input or output).
func fileBackend(ic *engine.InstanceContext, b storage.Backend) {
	if b == nil {
		ic.SetIO("stdio", stdioReason)
		return
	}
	ic.SetIO(b.Name(), ioReason(b))
}

// refMapped is the ledger's reason for the bytes of batches read out of a
// mapped file (an Arrow IPC file, a raw file): their arrays point into the
// mapping.
const refMapped = "mapped file"

// copyODirect is the ledger's reason for bytes bounced through an aligned
// buffer because O_DIRECT refuses their address, offset or length.
const copyODirect = "O_DIRECT alignment"

// readerAtSeeker is an io.Reader, io.ReaderAt and io.Seeker over a file
// (parquet's ReaderAtSeeker, ipc's ReadAtSeeker): storage.Reader, behind
// an aligning reader when the file was opened with O_DIRECT (Parquet's
// and Arrow's reads have any offset and length).
type readerAtSeeker interface {
	io.Reader
	io.ReaderAt
	io.Seeker
}

// ledger (nil at compile time) is where the aligning reader counts the
// bytes it bounces (copyODirect).
func newReaderAt(ctx context.Context, f storage.File, ledger *engine.Ledger) readerAtSeeker {
	if f.Align() > 1 {
		return &alignedReader{f: f, ctx: ctx, align: int64(f.Align()), ledger: ledger}
	}
	return storage.NewReader(ctx, f)
}

// alignedReader serves any ReadAt of an O_DIRECT file by reading the
// aligned blocks around it into a scratch buffer of its own and copying
// the part asked for: O_DIRECT's refusal of unaligned requests is the
// backend's contract, and this is the one place a reader bounces, in the
// open: the copy ledger counts it (copyODirect).
type alignedReader struct {
	f       storage.File
	ctx     context.Context
	ledger  *engine.Ledger
	align   int64
	scratch []byte
	pos     int64
	reqs    []storage.Request
}

func (r *alignedReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d of %s", off, r.f.Name())
	}
	if len(p) == 0 {
		return 0, nil
	}
	start := off &^ (r.align - 1)
	end := (off + int64(len(p)) + r.align - 1) &^ (r.align - 1)
	buf := r.buffer(int(end - start))
	// One request per 1 MiB, submitted as one batch: a large read (an
	// Arrow record batch's body) then has that many requests in flight on
	// io_uring instead of one, and posix still reads them with one preadv2.
	r.reqs = r.reqs[:0]
	for o := 0; o < len(buf); o += readAheadChunk {
		r.reqs = append(r.reqs, storage.Request{Buf: buf[o:min(o+readAheadChunk, len(buf))], Off: start + int64(o)})
	}
	if err := r.f.ReadBatch(r.ctx, r.reqs); err != nil {
		clear(r.reqs)
		return 0, err
	}
	got := 0
	var rerr error
	for _, q := range r.reqs {
		got += q.N
		if q.N < len(q.Buf) || q.Err != nil {
			rerr = q.Err
			break
		}
	}
	clear(r.reqs) // keep no reference to the buffers past the call
	n := 0
	if skip := int(off - start); got > skip {
		n = copy(p, buf[skip:got])
		r.ledger.Copied(copyODirect, int64(n))
	}
	if n < len(p) {
		if rerr == nil {
			rerr = io.EOF
		}
		return n, rerr
	}
	return n, nil
}

func (r *alignedReader) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.pos)
	r.pos += int64(n)
	if n > 0 && err == io.EOF {
		err = nil // io.Reader: the next Read says EOF
	}
	return n, err
}

func (r *alignedReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		size, err := r.f.Size()
		if err != nil {
			return r.pos, err
		}
		offset += size
	}
	if offset < 0 {
		return r.pos, fmt.Errorf("seek %s to %d: before the start", r.f.Name(), offset)
	}
	r.pos = offset
	return offset, nil
}

// buffer returns an aligned scratch buffer of n bytes, reused.
func (r *alignedReader) buffer(n int) []byte {
	if cap(r.scratch) < n {
		r.scratch = alignedBytes(n, int(r.align))
	}
	return r.scratch[:n]
}

// alignedBytes is n bytes whose address is a multiple of align.
func alignedBytes(n, align int) []byte {
	if align <= 1 {
		return make([]byte, n)
	}
	b := make([]byte, n+align)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) % uintptr(align)); r != 0 {
		skip = align - r
	}
	return b[skip : skip+n : skip+n]
}

// readAheadChunk is the size of a sequential reader's requests, and
// readAheadMax how many it submits at once at most.
const (
	readAheadChunk = 1 << 20
	readAheadMax   = 4
)

// seqReader reads a file front to back through its backend: it submits
// up to min(queue_depth, 4) requests of 1 MiB as one batch (io_uring keeps
// them in flight together; posix reads them with one preadv2 where they
// are adjacent) and serves them in order. Its chunks are aligned, so it
// works under O_DIRECT too. Used by one goroutine.
type seqReader struct {
	f    storage.File
	ctx  context.Context
	bufs [][]byte
	reqs []storage.Request
	next int   // the request being served
	pos  int   // bytes of reqs[next] served
	off  int64 // file offset of the next batch
	err  error // what ends the reader once the batch is served (io.EOF)
}

func newSeqReader(ctx context.Context, f storage.File, depth int) *seqReader {
	n := min(max(depth, 1), readAheadMax)
	r := &seqReader{f: f, ctx: ctx, bufs: make([][]byte, n), reqs: make([]storage.Request, n)}
	for i := range r.bufs {
		r.bufs[i] = alignedBytes(readAheadChunk, f.Align())
	}
	r.next = n // nothing read yet
	return r
}

func (r *seqReader) Read(p []byte) (int, error) {
	for {
		if r.next < len(r.reqs) {
			q := &r.reqs[r.next]
			if r.pos < q.N {
				n := copy(p, q.Buf[r.pos:q.N])
				r.pos += n
				return n, nil
			}
			if q.N < len(q.Buf) { // the file (or the reader) ends here
				if q.Err == nil {
					q.Err = io.EOF
				}
				r.err = q.Err
			}
			r.next, r.pos = r.next+1, 0
			if r.err == nil {
				continue
			}
		}
		if r.err != nil {
			return 0, r.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		if err := r.fill(); err != nil {
			r.err = err
			return 0, err
		}
	}
}

// fill submits the next batch.
func (r *seqReader) fill() error {
	for i := range r.reqs {
		r.reqs[i] = storage.Request{Buf: r.bufs[i], Off: r.off + int64(i*readAheadChunk)}
	}
	if err := r.f.ReadBatch(r.ctx, r.reqs); err != nil {
		return err
	}
	for i := range r.reqs {
		if q := r.reqs[i]; q.Err != nil && q.Err != io.EOF {
			return q.Err
		}
	}
	r.off += int64(len(r.reqs) * readAheadChunk)
	r.next, r.pos = 0, 0
	return nil
}

// describeText is the plan line of a text-file source (csv, ndjson): its
// path, its width, and where the types came from.
func describeText(path string, schema *arrow.Schema, inferred bool) string {
	how := "declared columns"
	if inferred {
		how = "inferred types"
	}
	return fmt.Sprintf("%s (%d columns, %s)", path, schema.NumFields(), how)
}

// chooseSinkIO selects the backend a sink writes path through (with
// partition_by, path is the directory whose part files it writes): nil for
// standard output, which package os writes; asking it for a backend or
// direct: true is an error rather than a setting silently ignored.
func chooseSinkIO(c FileIO, path string) (storage.Backend, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	explicit := (c.IO != "" && c.IO != "auto") || c.Direct
	switch {
	case strings.TrimSpace(path) == "":
		return nil, nil // checkPath says so
	case path == stdinPath:
		if explicit {
			return nil, engine.Errf("io", "path - writes standard output, a stream no storage backend opens; drop io: and direct:")
		}
		return nil, nil
	}
	return c.choose(path, ioUse{write: true})
}

// describeSinkIO is a sink's io line in the plan.
func describeSinkIO(b storage.Backend, path string) string {
	switch {
	case b != nil:
		return ioLine(b)
	case path == stdinPath:
		return stdioLine
	}
	return ""
}

// seqWriter writes a file front to back through its backend: it fills up
// to min(queue_depth, 4) aligned buffers of chunk bytes (1 MiB for a
// file sink) and submits them as one
// batch of positional writes at increasing offsets (io_uring keeps them in
// flight together). Under O_DIRECT every request is whole blocks: finish
// pads the last one with zeros and truncates the file back to the bytes
// written. Used by one goroutine.
type seqWriter struct {
	f     storage.File
	ctx   context.Context
	bufs  [][]byte
	reqs  []storage.Request
	cur   int   // the buffer being filled
	n     int   // bytes in bufs[cur]
	chunk int   // each buffer's size, a multiple of align
	off   int64 // file offset of bufs[0]
	size  int64 // bytes written so far
	align int
	err   error // the first failure: every later call returns it
}

func newSeqWriter(ctx context.Context, f storage.File, depth, chunk int) *seqWriter {
	n := min(max(depth, 1), readAheadMax)
	align := max(f.Align(), 1)
	chunk = max(chunk-chunk%align, align)
	return &seqWriter{f: f, ctx: ctx, bufs: make([][]byte, n), reqs: make([]storage.Request, 0, n), align: align, chunk: chunk}
}

func (w *seqWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	total := len(p)
	for len(p) > 0 {
		if w.bufs[w.cur] == nil { // allocated when first written (the raw sink writes around them)
			w.bufs[w.cur] = alignedBytes(w.chunk, w.align)
		}
		c := copy(w.bufs[w.cur][w.n:], p)
		w.n += c
		w.size += int64(c)
		p = p[c:]
		if w.n == w.chunk {
			w.cur, w.n = w.cur+1, 0
			if w.cur == len(w.bufs) {
				if err := w.submit(w.cur, 0); err != nil {
					return total - len(p), err
				}
			}
		}
	}
	return total, nil
}

// submit writes bufs[:full] whole and, if tail > 0, tail bytes of
// bufs[full], as one batch; then the buffers are free again.
func (w *seqWriter) submit(full, tail int) error {
	if full == 0 && tail == 0 {
		return nil
	}
	w.reqs = w.reqs[:0]
	for i := range full {
		w.reqs = append(w.reqs, storage.Request{Buf: w.bufs[i], Off: w.off + int64(i*w.chunk)})
	}
	if tail > 0 {
		w.reqs = append(w.reqs, storage.Request{Buf: w.bufs[full][:tail], Off: w.off + int64(full*w.chunk)})
	}
	err := w.f.WriteBatch(w.ctx, w.reqs)
	for i := range w.reqs {
		if err == nil && w.reqs[i].Err != nil {
			err = w.reqs[i].Err
		}
		w.reqs[i] = storage.Request{}
	}
	if err != nil {
		w.err = err
		return err
	}
	w.off += int64(full * w.chunk)
	w.cur = 0
	return nil
}

// finish writes what is buffered (the last block padded under O_DIRECT,
// then cut back with a truncate) and closes the backend's file; the
// caller still owns the file's name.
func (w *seqWriter) finish() error {
	if w.f == nil {
		return w.err
	}
	if w.err == nil {
		tail := w.n
		if pad := tail % w.align; pad != 0 {
			clear(w.bufs[w.cur][tail : tail+w.align-pad])
			tail += w.align - pad
		}
		if err := w.submit(w.cur, tail); err == nil && tail != w.n {
			if err := os.Truncate(w.f.Name(), w.size); err != nil {
				w.err = err
			}
		}
		w.n = 0
	}
	f := w.f
	w.f = nil
	if err := f.Close(); err != nil && w.err == nil {
		w.err = err
	}
	if w.err == nil {
		w.err = errors.New("file already finished")
		return nil
	}
	return w.err
}

// close closes the backend's file without writing what is buffered
// (abort); safe after finish.
func (w *seqWriter) close() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}
