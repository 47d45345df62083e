package initiator

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// maxChunk bounds one command's transfer when the controller sets no MDTS.
const maxChunk = 1 << 20

// MaxTransfer is the most bytes one Read or Write may move on this
// controller: its MDTS (in 4 KiB pages), at most 1 MiB.
func (c *Controller) MaxTransfer() int {
	if m := c.Identify.MDTS; m != 0 && m < 8 {
		return 4096 << m
	}
	return maxChunk
}

// ReadAt reads len(p) bytes of ns from byte offset off into p. Whole
// blocks land in p directly, in commands of at most MaxTransfer bytes
// spread over all the I/O queues and in flight together; a partial block
// at either end is read whole into a block-sized buffer and its part
// copied out.
func (c *Controller) ReadAt(ns Namespace, p []byte, off int64) error {
	return c.byteRange(ns, p, off, false)
}

// WriteAt writes p to ns at byte offset off, as ReadAt reads. A partial
// block at either end is read, patched and written back: that
// read-modify-write is not atomic against another host writing the same
// block.
func (c *Controller) WriteAt(ns Namespace, p []byte, off int64) error {
	return c.byteRange(ns, p, off, true)
}

func (c *Controller) byteRange(ns Namespace, p []byte, off int64, write bool) error {
	bs := int64(1) << ns.BlockShift
	end := off + int64(len(p))
	if off < 0 || end > int64(ns.Blocks)<<ns.BlockShift {
		return fmt.Errorf("initiator: %d bytes at %d are outside namespace %d (%d bytes)", len(p), off, ns.ID, int64(ns.Blocks)<<ns.BlockShift)
	}
	if len(p) == 0 {
		return nil
	}
	ios := c.current().io
	if len(ios) == 0 {
		return errors.New("initiator: no I/O queue connected")
	}
	// Partial blocks at the ends, through a bounce buffer.
	edge := func(blk int64) error {
		buf := make([]byte, bs)
		if err := c.Read(0, ns, uint64(blk), buf); err != nil {
			return err
		}
		lo, hi := max(off, blk*bs), min(end, (blk+1)*bs)
		if !write {
			copy(p[lo-off:hi-off], buf[lo-blk*bs:])
			return nil
		}
		copy(buf[lo-blk*bs:], p[lo-off:hi-off])
		return c.Write(0, ns, uint64(blk), buf)
	}
	first, last := off/bs, (end-1)/bs // blocks touched
	mid0, mid1 := first, last+1       // whole blocks [mid0, mid1)
	if off%bs != 0 {
		if err := edge(first); err != nil {
			return err
		}
		mid0++
	}
	if end%bs != 0 && last >= mid0 {
		if err := edge(last); err != nil {
			return err
		}
		mid1--
	}
	if mid0 >= mid1 {
		return nil
	}
	chunk := int64(c.MaxTransfer()) / bs
	n := (mid1 - mid0 + chunk - 1) / chunk
	workers := int64(0)
	for _, q := range ios {
		workers += int64(cap(q.slots))
	}
	workers = min(workers, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				blk := mid0 + i*chunk
				k := min(chunk, mid1-blk)
				b := p[blk*bs-off : (blk+k)*bs-off]
				q := int(i) % len(ios)
				var err error
				if write {
					err = c.Write(q, ns, uint64(blk), b)
				} else {
					err = c.Read(q, ns, uint64(blk), b)
				}
				if err != nil {
					errs[w] = err
					next.Store(n) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
