//go:build linux

package buffers

import (
	"bytes"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// logSink collects log lines and echoes them to the test log.
type logSink struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	s.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// newTest builds an allocator whose logs go to the test log, and closes it
// at the end of the test, failing it if anything is still allocated.
func newTest(t testing.TB, cfg ArenaConfig) (*Allocator, *logSink) {
	t.Helper()
	sink := &logSink{t: t}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(sink, nil))
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a, sink
}

// plainCfg is a small unbound arena that maps fast.
func plainCfg() ArenaConfig {
	return ArenaConfig{Kind: KindPlain, Node: NoNode, ExtentSize: 8 << 20}
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// mustPanic runs f and returns the panic value, failing if there is none.
func mustPanic(t *testing.T, what string, f func()) (v any) {
	t.Helper()
	defer func() {
		v = recover()
		if v == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
	return nil
}

// needRoot skips unless the test runs as root.
func needRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root to %s (euid %d)", why, os.Geteuid())
	}
}

func readIntFile(t testing.TB, path string) int64 {
	t.Helper()
	n, err := readInt64(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return n
}

func writeIntFile(t testing.TB, path string, n int64) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strconv.FormatInt(n, 10)), 0o644); err != nil {
		t.Fatalf("write %d to %s: %v", n, path, err)
	}
}

const (
	nrHugepages   = "/proc/sys/vm/nr_hugepages"
	pool2M        = "/sys/kernel/mm/hugepages/hugepages-2048kB"
	freeHugepages = pool2M + "/free_hugepages"
)

// reserveHugepages raises the 2 MiB pool by n pages for the test and
// restores it at the end; it skips when it cannot.
func reserveHugepages(t testing.TB, n int64) {
	t.Helper()
	needRoot(t, "reserve hugepages through "+nrHugepages)
	if _, err := os.Stat(pool2M); err != nil {
		t.Skipf("no 2 MiB hugepage pool: %v", err)
	}
	old := readIntFile(t, nrHugepages)
	writeIntFile(t, nrHugepages, old+n)
	t.Cleanup(func() { writeIntFile(t, nrHugepages, old) })
	if got := readIntFile(t, nrHugepages); got < old+n {
		t.Skipf("the kernel reserved only %d of %d 2 MiB hugepages asked (memory too fragmented?)", got, old+n)
	}
	if free := readIntFile(t, freeHugepages); free < n {
		t.Skipf("only %d 2 MiB hugepages free after reserving %d more (another process took them?)", free, n)
	}
}
