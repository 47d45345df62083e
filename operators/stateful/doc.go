// Package stateful holds zflow's stateful operators — the ones that keep
// rows between batches: aggregate, join, sort, top_k, window, distinct,
// dedupe, lookup_join and repartition — one file per operator, and the
// machinery they share, one file per piece: the key hash table
// (keys.go), spill files (spill.go), sort runs and sketches.
//
// Every operator's state is allocated from its instance's allocator
// (engine.InstanceContext.Alloc) and so charged to its budget; an operator
// that may grow past it asks the budget first (InstanceContext.Budget) and
// spills to the next tier when the answer is no. The operators register
// themselves in init, like the ones of package operators, which imports
// this package for that.
package stateful
