// Package mmap is the read-only mapping storage backend (registered as
// "mmap" in io/storage, Linux only): Open maps the whole file with
// PROT_READ and MAP_SHARED and advises MADV_SEQUENTIAL and MADV_WILLNEED.
// ReadBatch copies out of the mapping (the storage.File contract);
// File.Bytes exposes the mapping itself for readers that need no copy.
//
// # Zero-copy Arrow and the mapping's lifetime
//
// A Mapping is an Arrow memory.Buffer whose allocator is the mapping: its
// Free unmaps. OpenIPC reads an Arrow IPC file with ipc.NewMappedFileReader
// (which slices record bodies out of the bytes it is given) and passes each
// record through Mapping.Adopt, which replaces every buffer inside the
// mapping with memory.SliceBuffer of the mapping's buffer. Each array then
// holds a reference, so the pages stay mapped after the file is closed
// until the last array is released — Arrow's Retain/Release decide when
// munmap happens, and the ledger can count the bytes as by-reference.
// Buffers the reader had to allocate (decompressed bodies) come from the
// allocator passed to OpenIPC and are released as usual.
//
// A mapping is taken at Open: a file that grows afterwards is read to the
// size it had then. A file truncated while mapped faults (SIGBUS) where it
// is read past its new end: ReadBatch turns that into an error on the
// request (runtime/debug.SetPanicOnFault); arrays handed out by Adopt
// cannot be guarded that way, so files read zero-copy must not be
// truncated while in use (zflow's sinks write a new file and rename it).
// direct: true and writing are refused.
package mmap
