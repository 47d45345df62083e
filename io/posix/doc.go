// Package posix is the portable storage backend (registered as "posix" in
// io/storage): each request of a batch is one pread or pwrite after
// another, EINTR and EAGAIN retried (at most 1000 times per request), a
// short transfer continued for the rest, a read that returns 0 ending the
// request with io.EOF. The context is checked between requests; a request
// is never interrupted halfway.
//
// With direct: true the file is opened O_DIRECT (Linux); requests must be
// aligned to File.Align (statx's STATX_DIOALIGN, else the device's logical
// block size) and an unaligned one is refused with storage.ErrUnaligned,
// counted in Stats.Refused, never bounced. On a file system that refuses
// O_DIRECT (tmpfs) Open fails and says which file system refused.
//
// It is the backend on every platform (off unix, through os.File's ReadAt
// and WriteAt) and the one auto falls back to. preadv2 is not used yet:
// merging adjacent requests into one vectored call is a later step.
package posix
