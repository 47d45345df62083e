//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/bench/internal/runinfo"
	"github.com/zflowdev/zflow/io/storage"
)

// zJob is zflow's side of a fioJob: the same file, pattern, block size
// and queue depth, read through an io/storage backend the way a file
// operator reads: the backend chosen by name (storage.Select, as io: does),
// opened with the operator's options, and Depth requests of Block bytes
// into buffers of one page-aligned, prefaulted
// anonymous mapping (an arena extent's shape; O_DIRECT needs the
// alignment), kept in flight through the file's storage.Queue: each
// request handed back is refilled at once (the refills of one Reap
// submitted together), so Depth stay in flight as with fio on uring;
// posix runs the refills staged for a Reap on the reader's goroutine as
// one batch (adjacent ones in one preadv2), and mmap copies them.
// Sequential reads cover the file front
// to back and wrap at its end, as fio's time-based jobs do; random ones draw
// block-aligned offsets with replacement (fio's norandommap). With Once
// the file is read once, as fio without --time_based reads it.
type zJob struct {
	File    string
	Size    int64
	Random  bool
	Block   int
	Depth   int
	Backend string // posix, uring, mmap
	Direct  bool
	Runtime time.Duration
	Once    bool // read the file once, front to back, instead (sequential only)
	Seed    uint64
}

// reapPolicy is the -reap flag: auto, quarter or all.
var reapPolicy = "auto"

// zResult is what one zJob measured.
type zResult struct {
	BytesPerSec float64
	IOPS        float64
	CPU         float64 // user+system time of the process ÷ wall time, percent of one CPU
	Calls       int64   // syscalls (storage.Stats.Calls) per request ×1000
	Reason      string  // why the backend was chosen (storage.Backend.Reason)
}

func runZ(ctx context.Context, j zJob) (zResult, error) {
	b, err := storage.Select(j.Backend, j.File, storage.Options{Direct: j.Direct})
	if err != nil {
		return zResult{}, err
	}
	f, err := b.Open(j.File, os.O_RDONLY, 0)
	if err != nil {
		return zResult{}, err
	}
	defer f.Close()
	region, err := unix.Mmap(-1, 0, j.Block*j.Depth, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return zResult{}, fmt.Errorf("map %d buffers of %d bytes: %w", j.Depth, j.Block, err)
	}
	defer unix.Munmap(region)
	blocks := j.Size / int64(j.Block)
	if blocks < int64(j.Depth) {
		return zResult{}, fmt.Errorf("%s: %d bytes hold fewer than %d blocks of %d", j.File, j.Size, j.Depth, j.Block)
	}
	q, err := storage.NewQueue(f, storage.OpRead, j.Depth)
	if err != nil {
		return zResult{}, err
	}
	defer q.Close()
	rng := rand.New(rand.NewPCG(j.Seed, 0x5eed))
	next := int64(0)
	var total, nreq, submitted int64
	refill := make([]storage.Request, 0, j.Depth)
	done := make([]storage.Done, 0, j.Depth)
	stop := false
	// add queues buf for the next block unless the job is over.
	add := func(buf []byte) {
		if stop || (j.Once && submitted >= blocks) {
			return
		}
		off := next * int64(j.Block)
		if j.Random {
			off = rng.Int64N(blocks) * int64(j.Block)
		} else {
			next = (next + 1) % blocks
		}
		refill = append(refill, storage.Request{Buf: buf, Off: off})
		submitted++
	}
	// Completions are reaped as storage.ReapAtLeast says for the file's
	// place: a quarter of the depth on a block device (the rest keep it
	// busy meanwhile), all of it on tmpfs (io-wq's copies gain nothing from
	// reads left in flight, only from fewer wake-ups).
	facts, _ := storage.Probe(j.File)
	reapAtLeast := storage.ReapAtLeast(facts, j.Depth)
	switch reapPolicy {
	case "quarter":
		reapAtLeast = max(j.Depth/4, 1)
	case "all":
		reapAtLeast = j.Depth
	}
	ru0 := runinfo.CPU()
	start := time.Now()
	deadline := start.Add(j.Runtime)
	for i := range j.Depth {
		add(region[i*j.Block : (i+1)*j.Block : (i+1)*j.Block])
	}
	for {
		if len(refill) > 0 {
			if err := q.Stage(ctx, refill, 0); err != nil { // submitted by Reap's wait: one io_uring_enter a round
				return zResult{}, err
			}
			clear(refill)
			refill = refill[:0]
		}
		if q.Pending() == 0 {
			break
		}
		if done, err = q.Reap(ctx, done[:0], reapAtLeast); err != nil {
			return zResult{}, err
		}
		stop = stop || (!j.Once && !time.Now().Before(deadline))
		for _, d := range done {
			if d.Err != nil && d.Err != io.EOF {
				return zResult{}, d.Err
			}
			total += int64(d.N)
			nreq++
			add(d.Buf)
		}
	}
	el := time.Since(start).Seconds()
	cpu := runinfo.CPU() - ru0
	st := f.Stats()
	return zResult{
		BytesPerSec: float64(total) / el, IOPS: float64(nreq) / el,
		CPU: 100 * cpu.Seconds() / el, Calls: st.Calls * 1000 / max(st.Requests, 1),
		Reason: b.Reason(),
	}, nil
}
