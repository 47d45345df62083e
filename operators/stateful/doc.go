// Package stateful holds zflow's stateful operators — the ones that keep
// rows between batches: aggregate, join, sort, top_k, window, distinct,
// dedupe, lookup_join and repartition — one file per operator, and the
// machinery they share, one file per piece: the key hash table
// (keys.go), spill files (spill.go), sort runs and the sketches of the
// approximate aggregates (sketch_hll.go, sketch_quantile.go).
//
// Every operator's state is allocated from its instance's allocator
// (engine.InstanceContext.Alloc) and so charged to its budget; an operator
// that may grow past it asks the budget first (InstanceContext.Budget) and
// spills to the next tier when the answer is no. The operators register
// themselves in init, like the ones of package operators, which imports
// this package for that.
//
// # Sketches: what approx_count_distinct and approx_quantile promise
//
// approx_count_distinct keeps an HLL per group (sketch_hll.go): HLL++'s
// sparse representation, then 2^14 one-byte registers with Ertl's
// estimator. The relative error of its estimate, measured by
// TestHLLAccuracy on sets of exactly n distinct hashes:
//
//	n            seeds  worst |error|   mode
//	0, 1, 10     100    0 (exact)       sparse
//	1 000        100    0.1 %           sparse (linear counting, 2^25 slots)
//	5 000        50     1.2 %           dense
//	20 000       50     1.8 %           dense
//	100 000      20     1.7 %           dense
//	10 000 000   3      0.5 %           dense
//
// The dense sketch's standard error is 1.04/√(2^14) = 0.81 %; the tests
// hold every estimate to three of those, 2.44 %. A sketch is sparse up to
// 3072 distinct values (4 to 11 bytes each) and 16 KiB dense. DuckDB 1.5
// keeps 64 registers a group (64 bytes, about 13 % standard error): its
// answers and ours differ by that much, not by ours.
//
// approx_quantile keeps a TDigest per group (sketch_quantile.go): the
// merging t-digest at compression 100, the one DuckDB uses. NaN and ±Inf
// are skipped; q = 0 and 1 are the exact minimum and maximum; on fewer
// than about 64 values the answer is exact: the Hazen quantile, the
// interpolation DuckDB answers too. Its rank error — how far the answer's
// rank is from q·n, as a fraction of n — measured by
// TestTDigestRankError at n = 200 000 over q from 0.001 to 0.999, one
// digest or 100 merged, 1000 written, read back and merged, or a merge
// tree of 64 (2 seeds):
//
//	uniform, normal, lognormal   at most 0.13 % (0.03 % at q ≤ 0.01 or ≥ 0.99)
//	sorted, reverse-sorted       0
//	Zipf (s = 1.2, heavy ties)   up to 2.4 %: the answer may fall between
//	                             the right value and the next distinct
//	                             one; counting that neighbour, 0.11 %
//
// The tests hold continuous inputs to 0.25 % and Zipf to 3 %. The bound
// is measured, not proved: a t-digest has no worst-case guarantee. A
// digest holds at most 2δ + 2 = 202 centroids and a buffer of up to 500
// raw values: about 6 KiB once it has seen a thousand values, 216 bytes at
// ten.
//
// A sketch is built from the process's hashes (HashKey's seed is per
// process), so the bytes MarshalBinary writes are for spill files read
// back by the same run, not for keeping.
package stateful
