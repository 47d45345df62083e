//go:build linux

package storage

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// mapCostProbe is how much of a file the map-cost probe reads: enough
// pages that the per-page costs dominate, little enough to be a few
// milliseconds. Files smaller than mapCostMin are not probed (mapping
// them costs little either way, and they stay zero-copy).
const (
	mapCostProbe = 8 << 20
	mapCostMin   = 4 << 20
)

// mapCosts caches, per mounted file system (st_dev), why mapping its files
// loses to copying them ("" when it does not).
var mapCosts sync.Map

// mapSlower measures, once per file system, whether reading a file of it
// through a mapping (mapping its pages in with MADV_POPULATE_READ, then
// reading them) costs more than copying it into memory the process
// already has (pread, then reading the copy), on the first large file it
// is asked about. Mapping a page in means page-table work per 4 KiB page;
// on bare metal that is cheaper than copying the page, but under some
// hypervisors (shadow or nested page tables) it costs several times more,
// and then a copy — deliberate, and counted in the ledger — is the faster
// whole-file read. It returns the reason with the figures, or "".
func mapSlower(path string, dev uint64) string {
	if v, ok := mapCosts.Load(dev); ok {
		return v.(string)
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() < mapCostMin {
		return ""
	}
	n := int(min(st.Size(), mapCostProbe)) &^ (os.Getpagesize() - 1)
	buf := make([]byte, n)
	clear(buf) // the copy's memory is the process's already, as an arena's is
	fd := int(f.Fd())
	copied, mapped := time.Duration(1<<62), time.Duration(1<<62)
	for range 3 {
		t0 := time.Now()
		if k, err := unix.Pread(fd, buf, 0); err != nil || k != n {
			return ""
		}
		sink.Store(foldBytes(buf))
		copied = min(copied, time.Since(t0))

		t0 = time.Now()
		m, err := unix.Mmap(fd, 0, n, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return ""
		}
		_ = unix.Madvise(m, unix.MADV_POPULATE_READ)
		sink.Store(foldBytes(m))
		unix.Munmap(m)
		mapped = min(mapped, time.Since(t0))
	}
	why := ""
	if mapped > copied*11/10 {
		why = fmt.Sprintf("mapping a page in costs more than copying it on this machine (%d MiB of %s: mapped and read in %v, copied and read in %v)",
			n>>20, path, mapped.Round(time.Microsecond), copied.Round(time.Microsecond))
	}
	mapCosts.Store(dev, why)
	return why
}

// sink keeps foldBytes's result alive (atomic: probes of two file systems
// may run at once).
var sink atomic.Uint64

// foldBytes reads every byte of b (what a reader of the file does).
func foldBytes(b []byte) uint64 {
	var x uint64
	for len(b) >= 8 {
		x ^= binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	return x
}
