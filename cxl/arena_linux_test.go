package cxl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
)

func TestPoolAllocatesInSegment(t *testing.T) {
	path := filepath.Join(shmDir(t), "seg")
	p, err := buffers.NewPool(buffers.PoolConfig{Kind: "cxl", Path: path, Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	pool := p.(*Pool)
	seg := pool.Segment()
	acct := p.Account("op", 0)
	// An Arrow array built with the pool's allocator has its buffers in
	// the segment, where another mapping reads the same bytes.
	b := array.NewInt64Builder(acct)
	for i := range 10000 {
		b.Append(int64(i) * 3)
	}
	arr := b.NewInt64Array()
	b.Release()
	data := arr.Data().Buffers()[1].Bytes()
	off, ok := seg.Contains(data)
	if !ok {
		t.Fatal("the array's values are not in the segment")
	}
	other, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if string(other.Bytes()[off:off+int64(len(data))]) != string(data) {
		t.Error("another mapping of the segment reads different bytes")
	}
	other.Close()
	// A large allocation (above the largest size class) claims a run of
	// extents and gives it back when freed.
	free := seg.freeExtents()
	big := acct.Allocate(9 << 20)
	if _, ok := seg.Contains(big); !ok {
		t.Error("large allocation not in the segment")
	}
	if got := free - seg.freeExtents(); got != 3 {
		t.Errorf("a 9 MiB allocation claimed %d extents of 4 MiB, want 3", got)
	}
	acct.Free(big)
	if seg.freeExtents() != free {
		t.Errorf("freed large allocation: %d extents free, want %d", seg.freeExtents(), free)
	}
	rep := p.Report()
	if rep.Arena != "cxl" || rep.Path != path || rep.Mapped == 0 {
		t.Errorf("report %+v", rep)
	}
	if p.Kind() != "cxl" {
		t.Errorf("kind %q", p.Kind())
	}
	// Outstanding memory keeps the pool (and the segment's extents) open.
	if err := p.Close(); err == nil {
		t.Error("Close with an array outstanding succeeded")
	}
	arr.Release()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := s.freeExtents(); n != s.hdr.Extents.Count {
		t.Errorf("after Close %d of %d extents free", n, s.hdr.Extents.Count)
	}
	if ps, _ := s.Participants(); len(ps) != 0 {
		t.Errorf("after Close: participants %+v", ps)
	}
}

func TestPoolFull(t *testing.T) {
	path := filepath.Join(shmDir(t), "seg")
	p, err := NewPool(buffers.PoolConfig{Path: path, Size: 9 << 20}) // one extent after the tables
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = r.(error)
			}
		}()
		p.Allocate(5 << 20)
		return nil
	}()
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), path) {
		t.Errorf("allocation beyond the segment: %v", err)
	}
}

func TestPoolRefusals(t *testing.T) {
	dir := shmDir(t)
	for _, tc := range []struct {
		cfg  buffers.PoolConfig
		want string
	}{
		{buffers.PoolConfig{}, "needs the path"},
		{buffers.PoolConfig{Path: filepath.Join(dir, "a"), Size: 8 << 20, Bind: true}, "cannot be bound"},
		{buffers.PoolConfig{Path: filepath.Join(dir, "missing")}, "no such file"},
	} {
		if _, err := NewPool(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestKilledPoolReclaimed: a process that allocated in a segment and was
// killed leaves extents claimed; reclaiming its slot frees them.
func TestKilledPoolReclaimed(t *testing.T) {
	if path := os.Getenv("ZFLOW_CXL_POOL_CHILD"); path != "" {
		p, err := NewPool(buffers.PoolConfig{Path: path})
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		mem := memory.Allocator(p)
		mem.Allocate(100)
		mem.Allocate(10 << 20)
		fmt.Println("ready")
		select {}
	}
	path := filepath.Join(shmDir(t), "seg")
	s, err := Open(path, Options{Create: true, Size: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all := s.freeExtents()
	cmd := startChild(t, "TestKilledPoolReclaimed", "ZFLOW_CXL_POOL_CHILD="+path)
	if used := all - s.freeExtents(); used != 4 {
		t.Errorf("child holds %d extents, want 4 (one of classes, three for 10 MiB)", used)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	got, err := s.Reclaim()
	if err != nil || len(got) != 1 {
		t.Fatalf("reclaim: %+v %v", got, err)
	}
	if n := s.freeExtents(); n != all {
		t.Errorf("after reclaim %d of %d extents free", n, all)
	}
}
