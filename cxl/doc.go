// Package cxl will hold shared memory segments, on a device-DAX file
// (/dev/daxX.Y) or emulated by a file on tmpfs or hugetlbfs: a little-endian
// header, an offset-based in-segment allocator and channels of batch
// descriptors, so another process can map the segment and build Arrow
// arrays that point straight into it, without a copy. Everything read from
// shared memory is bounds-checked; segments are created 0600.
package cxl
