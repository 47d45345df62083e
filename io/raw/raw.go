package raw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/io/storage"
)

// Chunk is the size of the requests a Reader or Writer splits a range
// into, so that a backend with queue depth keeps several in flight.
const Chunk = 1 << 20

// Mapped is the optional interface of a storage.File whose bytes are
// mapped into memory (io/mmap): the mapping as an Arrow buffer, not
// retained for the caller.
type Mapped interface {
	ArrowBuffer() *memory.Buffer
}

// Result is what Reader.Read returns.
type Result struct {
	// Buf holds the bytes read (Len() == the length asked for, or fewer
	// when the file ended first; see N). The caller owns it and must
	// Release it.
	Buf *memory.Buffer
	// N is how many bytes came from the file; bytes of Buf past N (a
	// padded read) are zero.
	N int
	// ByRef says Buf is a slice of the file's mapping, not new memory.
	ByRef bool
}

// Reader reads ranges of one file into buffers of one allocator. It is
// used by one goroutine at a time, like its File.
type Reader struct {
	f     storage.File
	mem   memory.Allocator
	align int64
	depth int
	reqs  []storage.Request
}

// NewReader returns a Reader of f allocating from mem, keeping up to
// depth requests of Chunk bytes in flight (at least 1).
func NewReader(f storage.File, mem memory.Allocator, depth int) *Reader {
	depth = max(depth, 1)
	return &Reader{f: f, mem: mem, align: int64(max(f.Align(), 1)), depth: depth, reqs: make([]storage.Request, 0, depth)}
}

// Read reads n bytes at off into a buffer of size bytes (size ≥ n; the
// bytes past what was read are zeroed: a padded last record). A file that
// ends before off+n gives fewer bytes, Result.N says how many; any other
// failure is an error naming the file and the range.
func (r *Reader) Read(ctx context.Context, off int64, n, size int) (Result, error) {
	if off < 0 || n < 0 || size < n {
		return Result{}, fmt.Errorf("raw: read %d bytes at %d of %s into %d: bad range", n, off, r.f.Name(), size)
	}
	if m, ok := r.f.(Mapped); ok && size == n {
		return r.mapped(m.ArrowBuffer(), off, n), nil
	}
	a := r.align
	start := off - off%a
	skip := off - start
	end := off + int64(n)
	if rem := end % a; rem != 0 {
		end += a - rem
	}
	span := int(end - start)
	// The region read is span bytes at an aligned address; the buffer
	// returned starts skip bytes into it and holds size bytes.
	need := max(span, int(skip)+size)
	parent := memory.NewResizableBuffer(r.mem)
	parent.Resize(need + int(a) - 1)
	base := parent.Bytes()
	fix := 0
	if rem := int64(uintptr(unsafe.Pointer(unsafe.SliceData(base)))) % a; rem != 0 {
		fix = int(a - rem)
	}
	region := base[fix : fix+span]
	got, err := r.readRegion(ctx, region, start)
	if err != nil {
		parent.Release()
		return Result{}, fmt.Errorf("raw: read %d bytes at %d of %s: %w", n, off, r.f.Name(), err)
	}
	have := min(max(got-int(skip), 0), n)
	clear(base[fix+int(skip)+have : fix+int(skip)+size])
	buf := memory.SliceBuffer(parent, fix+int(skip), size)
	parent.Release()
	return Result{Buf: buf, N: have}, nil
}

// mapped is a read served by a slice of the mapping.
func (r *Reader) mapped(m *memory.Buffer, off int64, n int) Result {
	size := int64(m.Len())
	lo := min(off, size)
	hi := min(off+int64(n), size)
	return Result{Buf: memory.SliceBuffer(m, int(lo), int(hi-lo)), N: int(hi - lo), ByRef: true}
}

// readRegion fills region from the file at off (both aligned), Chunk by
// Chunk, depth requests per batch; it returns the bytes read, fewer than
// len(region) when the file ends inside it.
func (r *Reader) readRegion(ctx context.Context, region []byte, off int64) (int, error) {
	done := 0
	for done < len(region) {
		r.reqs = r.reqs[:0]
		for p := done; p < len(region) && len(r.reqs) < r.depth; p += Chunk {
			r.reqs = append(r.reqs, storage.Request{Buf: region[p:min(p+Chunk, len(region))], Off: off + int64(p)})
		}
		berr := r.f.ReadBatch(ctx, r.reqs)
		short := false
		for i := range r.reqs {
			q := r.reqs[i]
			r.reqs[i] = storage.Request{}
			if berr != nil {
				continue
			}
			if q.Err != nil && !errors.Is(q.Err, io.EOF) {
				berr = q.Err
				continue
			}
			if !short {
				done += q.N
			}
			short = short || q.N < len(q.Buf)
		}
		if berr != nil {
			return done, berr
		}
		if short {
			break
		}
	}
	return done, nil
}
