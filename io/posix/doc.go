// Package posix is the portable storage backend (registered as "posix" in
// io/storage): the requests of a batch are served in order, each by pread
// or pwrite, except that on Linux a run of adjacent requests (each
// starting where the previous ends, up to IOV_MAX) is served by one
// preadv2/pwritev2 — sequential chunked reads cost one syscall per batch,
// not per chunk. EINTR and EAGAIN are retried (at most 1000 times per
// request), a short transfer continued for the rest, a read that returns 0 ending the
// request with io.EOF. The context is checked between requests; a request
// is never interrupted halfway.
//
// With direct: true the file is opened O_DIRECT (Linux); requests must be
// aligned to File.Align (statx's STATX_DIOALIGN, else the device's logical
// block size) and an unaligned one is refused with storage.ErrUnaligned,
// counted in Stats.Refused, never bounced. On a file system that refuses
// O_DIRECT (tmpfs) Open fails and says which file system refused.
// After a short vectored transfer the request it ended in, and those after
// it, go on one by one; after a vectored call fails, every request of the
// run is done on its own so the error lands on the request it belongs to
// (a Fault hook sees a vectored call as storage.Call with Reqs > 1).
//
// Its Queue (storage.Queuer) runs each Submit as a job on a few worker
// goroutines, so the next reads are in flight while the caller works on
// what came back: the arrow source's read-ahead on tmpfs, where the
// workers' copies out of the page cache overlap the decoding.
//
// It is the backend on every platform (off unix, through os.File's ReadAt
// and WriteAt; off Linux without the vectored calls) and the one auto falls
// back to.
package posix
