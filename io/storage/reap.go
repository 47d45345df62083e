package storage

// ReapAtLeast is how many completions a streaming reader of a Queue of
// depth on a file with facts f waits for in each Reap (its atLeast), the
// rest of the queue staying in flight meanwhile:
//
//   - On a block device, a quarter of the depth: the three quarters still
//     in flight keep the device busy while the reader refills, and the
//     reader wakes a quarter as often as per completion. Reaping all of
//     them drains the queue each round, the device idle until the refills
//     arrive (0.63 of fio's io_uring at sequential O_DIRECT reads when the
//     benchmark read in batches that drained, 0.95 with a quarter).
//   - On a file system in memory (tmpfs, ramfs, hugetlbfs), the whole
//     depth: io_uring punts these reads to io-wq worker threads, which copy
//     out of the page cache on the same CPUs as the reader; nothing is kept
//     busy by reads left in flight, and each wake-up of the reader (and
//     the io_uring_enter that goes with it) is CPU taken from the copies.
//     Reaping a quarter made about 4 io_uring_enter per 32 requests where
//     reaping all made 1, and a check on a 512 MiB tmpfs file gave 1.38 and
//     1.57 of fio's io_uring for sequential 1 MiB and 128 KiB reaping all,
//     0.84 and 1.00 reaping a quarter (bench/results, section F).
//
// Reap waits for min(atLeast, Pending()), so the last round of a file
// never waits for more than is left.
func ReapAtLeast(f Facts, depth int) int {
	if f.Memory {
		return max(depth, 1)
	}
	return max(depth/4, 1)
}
