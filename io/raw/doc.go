// Package raw moves byte ranges of a storage.File straight into and out of
// Arrow buffers, with no copy of its own: the raw source and sink of
// package operators are built on it, and so will be the backends still to
// come that serve fixed-size blocks (NVMe/TCP namespaces, CXL segments),
// which only need to implement storage.File.
//
// # Reading
//
// Reader.Read returns a memory.Buffer holding n bytes of the file at an
// offset. The buffer is the read buffer: it is allocated from the caller's
// allocator (an arena, in a run), the backend's requests point into it, and
// the returned buffer is a slice of it, so the bytes the device or the
// kernel wrote are the bytes the caller's arrays point at. Under O_DIRECT
// (File.Align > 1) the allocation is made one alignment unit larger so
// that the read can start at an aligned address, the requests cover the
// aligned blocks around the range, and the buffer is sliced to the range
// asked for; the extra bytes read cost device bandwidth, never a copy. On
// a backend whose files are mapped (io/mmap: the file offers its mapping as
// an Arrow buffer through the optional Mapped interface) the result is a
// slice of the mapping, passed on by reference.
//
// # Writing
//
// Writer writes pieces of caller memory at increasing offsets as
// positional requests from the caller's own buffers. Under O_DIRECT a
// piece whose address is aligned while the file offset is aligned too is
// written from the caller's memory in whole blocks; what is left (an
// unaligned address, a tail shorter than a block) is bounced through one
// aligned staging buffer, and Writer.Bounced counts those bytes so the
// caller can put them in the copy ledger. Finish pads the last block with
// zeros; the caller truncates the file back to Writer.Size (the file
// systems that take O_DIRECT all truncate).
//
// The model is the one of Linux's block layer as documented in open(2)
// ("O_DIRECT": buffer address, length and offset multiples of the
// alignment statx STATX_DIOALIGN reports).
package raw
