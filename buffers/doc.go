// Package buffers is zflow's memory: arenas of large mmap'd regions and an
// implementation of arrow-go's memory.Allocator on top of them.
//
// # Arena
//
// An arena maps extents (64 MiB by default), each through a fallback chain
// that starts at the Kind asked for: MAP_HUGETLB (2 MiB pages, or 1 GiB when
// asked) → anonymous memory with madvise(MADV_HUGEPAGE) (transparent
// hugepages) → plain pages. Each mapping is then bound to a NUMA node with
// mbind(MPOL_BIND) (topology.Mbind), optionally mlocked and prefaulted. Any
// step that fails is logged once with its reason (the hugepage pool's state
// and how to reserve more, the THP mode, the missing node), as a warning,
// or at Info with ArenaConfig.QuietFallback (an arena nobody asked for: the
// engine's default), and the arena
// carries on with less: a run never fails for want of hugepages. What a
// mapping actually got is read back, never assumed: Arena.Backing parses
// /proc/self/smaps (KernelPageSize, AnonHugePages, Private_Hugetlb, Rss,
// Locked) and asks move_pages(2) which node a sample of pages is on.
// "Use the Go heap" is not a Kind: it is the absence of this package
// (memory.NewGoAllocator).
//
// Arenas are Linux-only (mmap, madvise, mbind, /proc/self/smaps,
// move_pages; extent_linux.go). The package builds everywhere, but on any
// other OS New fails, after checking the config, with an error that says
// so and wraps errors.ErrUnsupported; callers then use the Go heap (the
// engine logs the reason and does).
//
// # Allocator
//
// New builds an Allocator over an arena. Requests up to MaxClassSize
// (4 MiB) are rounded to one of 60 size classes (64-byte multiples, four
// per doubling) carved from extents in spans; freed blocks go on sharded
// free lists, linked through the blocks themselves, and are reused without
// ever going back to the OS or through the Go heap. Larger requests get a
// mapping of their own, kept in a small cache when freed. Every block is
// 64-byte aligned and handed out zeroed (fresh memory is zero; a reused
// block has the bytes asked for cleared when it is handed out again:
// BenchmarkZeroing found clearing whole blocks on free no faster, and it
// clears more). Free checks what it is given against a per-block state
// word: a slice not from this allocator, not the start of a block, or freed
// twice while it is still free panics with a message saying which, before
// anything is corrupted. A stale second Free, after the block was handed
// out again, cannot be told from the new owner's Free and is not caught.
// Allocate and Free of a class block make no Go heap allocation.
//
// # Budgets and stats
//
// A hard budget makes an Allocate beyond it panic with a *BudgetError
// (memory.Allocator cannot return errors; the engine recovers it and fails
// the operator). A soft budget is backpressure: an Allocate above it waits
// for frees, at most SoftWait, then proceeds, so it cannot deadlock.
// Allocator.For(owner) returns a view that attributes allocations to an
// operator in BudgetError and Stats; Pool.Account(owner, limit) is the same
// view with a limit of the owner's own and the Budget an owner plans with
// (Used, Limit, Available, Reserve, TryAllocate: the last two say no
// instead of panicking). An owner without a limit counts allocated and
// freed bytes in lanes picked by the calling goroutine, each count on a
// cache line of its own (producer and consumer do not share one per
// call), and samples its peak every 32 KiB a lane moves; a pool without a
// budget keeps its total as its owners' claims, moved 64 KiB at a time, so
// no counter is shared by every operator on every allocation. Each
// free-list shard has a one-block slot taken and filled with one atomic; a
// block freed there stays charged to its owner (when neither the owner nor
// the pool has a budget), so the owner's next allocation of that size on
// that goroutine touches no counter at all — InUse, Stats, Usage, Report
// and Close give those blocks back first. Stats counts blocks in use from
// their state words (spread so that neighbouring blocks' words sit on
// different cache lines): the hot path keeps no per-call counters.
//
// # Pools and kinds
//
// A Pool is what a run allocates from; kinds of pool register with
// RegisterKind (hugepage, thp, plain: arenas; heap: the Go heap with the
// same accounting), the database/sql driver pattern, so another package
// (shared memory, registered I/O buffers) supplies a kind without this
// package importing it. NewHeapPool also wraps an allocator a caller
// passes (kind "caller").
//
// The layout follows the classic size-class allocators (tcmalloc's size
// classes and spans, jemalloc's extents) with arrow-go's allocator contract
// (memory.Allocator, memory.CheckedAllocator for leak checks). See
// docs/ARCHITECTURE.md, "Memory: pools, kinds and accounts".
package buffers
