package engine

import (
	"sync/atomic"
	"time"
)

// Spilling is how a stateful operator (sort, aggregate, join) finishes
// when its state outgrows its budget: it writes part of the state out
// (sorted runs, hash partitions) and reads it back later. The engine does
// not spill anything itself; it carries where spills go (Settings.Spill),
// what a node may spill (SpillDescriber, for the plan) and what it did
// (InstanceContext.CountSpill, for the summary and the run stats).

// SpillSettings say where stateful operators write the state that does
// not fit their budget. The tier is files in a directory, written through
// a storage backend; a configured CXL segment or memory-only NUMA node is
// meant to come before it (not built yet).
type SpillSettings struct {
	// Dir is the directory under which each spilling instance makes its
	// own (zflow-spill-<pid>-<node>-<random>) and removes it when it ends,
	// on success, failure and cancellation alike. Empty means the OS
	// temporary directory ($TMPDIR, else /tmp).
	Dir string
	// IO is the storage backend kind spill files go through (auto, posix,
	// uring; see package io/storage); empty means auto.
	IO string
	// Compression of spilled Arrow IPC data: none (default), lz4 or zstd.
	Compression string
}

// SpillDescriber is an optional Factory interface of an operator that may
// spill: where and how, one line for `zflow plan` ("may spill sorted runs
// to /tmp/zflow-spill-… as Arrow IPC, io auto").
type SpillDescriber interface {
	DescribeSpill() string
}

// spillCounters are one instance's spill figures (CountSpill).
type spillCounters struct {
	bytes, files, nanos atomic.Int64
}

// CountSpill adds to what the instance spilled: bytes written, files
// made and the time spent writing and reading them back; the summary
// shows them per operator (OpStats.Spill). Any goroutine of the instance
// may call it.
func (ic *InstanceContext) CountSpill(bytes int64, files int, d time.Duration) {
	if ic != nil && ic.spill != nil {
		ic.spill.bytes.Add(bytes)
		ic.spill.files.Add(int64(files))
		ic.spill.nanos.Add(int64(d))
	}
}

// SpillStats are what a node spilled in a run, summed over its
// instances.
type SpillStats struct {
	Bytes int64         `json:"bytes"`
	Files int64         `json:"files"`
	Time  time.Duration `json:"time_ns"`
}

func (s *SpillStats) add(c *spillCounters) {
	s.Bytes += c.bytes.Load()
	s.Files += c.files.Load()
	s.Time += time.Duration(c.nanos.Load())
}
