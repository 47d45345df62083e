// Package cxl holds shared-memory segments: a device-DAX device
// (/dev/daxX.Y, how CXL Type-3 memory and persistent memory appear), or,
// where there is none, a file on hugetlbfs or tmpfs that emulates one.
// Several processes map a segment MAP_SHARED; Arrow buffers allocated in it
// by one process are read in place by the others, so a batch crosses a
// process boundary by reference.
//
// A segment starts with a little-endian header page (header.go: magic,
// version stored last, size, alignment, the maker's pid and start time, the
// offsets of the tables and of the data region, a CRC-32C of the static
// part), then a table of participant slots and a table of channels, then
// the data region, aligned to the device's alignment (device DAX maps only
// in multiples of it) or the huge page size.
//
// Nothing read from a segment is trusted: the header is checked field by
// field against the mapped size with overflow in mind, and every error
// names the segment and the offset of the bad field.
//
// Making a segment is serialised by an fcntl OFD lock, and a participant's
// slot is owned through another: the kernel drops a process's locks when
// it dies, however it dies, so a live slot whose lock nobody holds was left
// by a dead process and is reclaimed by whoever takes the lock next. No
// liveness decision rests on a pid, which the kernel recycles; no mutex
// lives in the segment (a robust mutex recovers the lock, not the data it
// guarded). Space is reserved with fallocate when the segment is made, so
// a full tmpfs or an empty hugepage pool is an error then rather than a
// SIGBUS later. Segments are made 0600, and a wider mode is refused unless
// the segment is declared shared.
package cxl
