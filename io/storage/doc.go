// Package storage is the storage backends' contract: what a file source
// or sink reads and writes through, importable without an alias (the io
// folder holds only subpackages, and none is named io).
//
// # Files and batches
//
// A Backend opens files; a File takes batches of positional requests into
// caller-owned buffers ({Buf, Off}, results per request: N and Err) and
// returns when every request has its result and the kernel holds no
// reference to any buffer. A read shorter than its buffer ends with io.EOF
// (the file ends inside it). NewReader adapts a File to io.ReaderAt,
// io.Seeker and io.Reader (parquet.ReaderAtSeeker: Parquet reads through
// it). Options: Direct (O_DIRECT; requests must be aligned to File.Align,
// the logical block size, and an unaligned one is refused with
// ErrUnaligned and counted, never bounced), QueueDepth, WholeFile (read
// whole: mmap on tmpfs), Write (a sink: never mmap), SQPoll (io_uring's
// polling thread), and Fault, the hook tests use to wrap each real syscall
// or completion and inject EINTR, EAGAIN, short transfers or EIO.
//
// # Queues
//
// A batch drains: the device idles between one batch and the next. A
// streaming reader takes a Queue instead (NewQueue): Submit hands
// requests over and returns, Reap hands completed ones back with their
// tags, waiting for at least as many as asked, so slots are refilled as
// they free up. A buffer is the backend's from Submit until Reap or Close
// hands it back; a cancelled context, Queue.Close and File.Close cancel
// what is in flight and wait for every completion. A backend with a
// queue of its own implements Queuer (io/uring's ring, io/posix's worker
// goroutines); NewQueue runs any other backend's batches behind the same
// interface.
//
// # Backends and the choice
//
// Backends register themselves in init (the database/sql driver
// pattern): io/posix (everywhere), io/mmap and io/uring (Linux). A binary
// offers what it links. Select(kind, path, opts) returns the Backend for
// a file operator's io: parameter, and Backend.Name and Reason say what
// was chosen and why (for zflow plan, the run summary and the
// zflow.io.backend span attributes):
//
//   - uring, posix, mmap: that backend, or an error saying why it cannot
//     run (io_uring refused: the sysctl, seccomp's EPERM, ENOSYS; not
//     linked into the binary).
//   - auto: from the path's Facts (statfs, /proc/self/mountinfo,
//     /sys/dev/block): a file system in memory (tmpfs, ramfs, hugetlbfs)
//     gets mmap when the file is read whole (Options.WholeFile, an Arrow
//     IPC file) and posix otherwise, because io_uring reads of tmpfs are
//     punted to io-wq worker threads and lose to pread; direct: true is
//     dropped there (no device to bypass; kernels before 6.6 refuse
//     O_DIRECT on tmpfs) and the reason says so. A
//     block device with a queue depth above 1 gets uring, or posix with
//     io_uring's refusal in the reason. Anything else gets posix. Off
//     Linux auto says only posix exists.
//
// Refuse makes a backend unavailable until restored, with a reason, so
// tests can play a machine that refuses io_uring through the real Select.
//
// Decide is the decision as a pure function of the facts, for tests and
// for `zflow plan` on a machine that is not the one that will run.
package storage
