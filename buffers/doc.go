// Package buffers will hold zflow's memory: arenas made of large mmap'd
// regions (MAP_HUGETLB, then transparent hugepages, then plain pages) bound
// to a NUMA node with mbind, and an implementation of arrow-go's
// memory.Allocator on top of them (64-byte aligned size classes, reuse
// without the Go heap, a budget, stats by backing kind).
//
// Until it lands, every batch is allocated from the memory.Allocator passed
// to the run (the Go allocator by default). See DESIGN.md, "Memory, NUMA and
// CXL".
package buffers
