//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zflowdev/zflow/bench/internal/runinfo"
	"github.com/zflowdev/zflow/nvmeof/initiator"
)

// result is one measurement: what moved, in how long, and the CPU time the
// process spent meanwhile (getrusage RUSAGE_SELF: the target and the
// initiator together, since both run in this process).
type result struct {
	IOs     int64
	Bytes   int64
	Seconds float64
	CPUSec  float64
}

func (r result) iops() float64 { return float64(r.IOs) / r.Seconds }
func (r result) bps() float64  { return float64(r.Bytes) / r.Seconds }

// cpuPerIO is CPU µs per I/O.
func (r result) cpuPerIO() float64 {
	if r.IOs == 0 {
		return 0
	}
	return r.CPUSec / float64(r.IOs) * 1e6
}

// driveOurs runs measurement m against the target at addr for d: it
// connects a controller with m.Queues I/O queues, keeps m.Depth commands
// in flight in total (one goroutine each, goroutine w on queue w mod
// Queues, so each queue holds Depth/Queues), and counts what completes.
// Random reads go to 4 KiB-aligned offsets drawn uniformly over the
// namespace; sequential transfers take consecutive blocks of m.Block,
// wrapping at the end.
func driveOurs(ctx context.Context, addr, subnqn string, m *Measure, d time.Duration) (result, error) {
	per := (m.Depth + m.Queues - 1) / m.Queues
	ctrl, err := initiator.Connect(ctx, addr, initiator.Config{SubNQN: subnqn, HostNQN: hostNQN, IOQueues: m.Queues, QueueDepth: per})
	if err != nil {
		return result{}, err
	}
	defer ctrl.Close()
	if ctrl.IOQueues() != m.Queues {
		return result{}, fmt.Errorf("%d I/O queues granted, asked for %d", ctrl.IOQueues(), m.Queues)
	}
	ns, err := ctrl.Namespace(m.NSID)
	if err != nil {
		return result{}, err
	}
	bs := uint64(1) << ns.BlockShift
	size := ns.Blocks * bs
	stride := uint64(m.Block) / bs
	var stop atomic.Bool
	var ios atomic.Int64
	var next atomic.Uint64
	errs := make([]error, m.Depth)
	var wg sync.WaitGroup
	cpu0, t0 := runinfo.CPU(), time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	for w := range m.Depth {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, m.Block)
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			q := w % m.Queues
			n := int64(0)
			for !stop.Load() && ctx.Err() == nil {
				var slba uint64
				if m.Random {
					slba = rng.Uint64N(size/uint64(m.Block)) * stride
				} else {
					slba = (next.Add(1) - 1) % (size / uint64(m.Block)) * stride
				}
				var err error
				if m.Write {
					err = ctrl.Write(q, ns, slba, buf)
				} else {
					err = ctrl.Read(q, ns, slba, buf)
				}
				if err != nil {
					errs[w] = err
					stop.Store(true)
					break
				}
				n++
			}
			ios.Add(n)
		}()
	}
	wg.Wait()
	timer.Stop()
	secs, cpu := time.Since(t0).Seconds(), (runinfo.CPU() - cpu0).Seconds()
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	r := result{IOs: ios.Load(), Seconds: secs, CPUSec: cpu}
	r.Bytes = r.IOs * int64(m.Block)
	return r, ctx.Err()
}
