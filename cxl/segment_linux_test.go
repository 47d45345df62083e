package cxl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// shmDir is a directory on tmpfs for this test's segments.
func shmDir(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	d, err := os.MkdirTemp("/dev/shm", "zflow-cxl-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestMakeAndAttach(t *testing.T) {
	path := filepath.Join(shmDir(t), "seg")
	a, err := Open(path, Options{Create: true, Size: 5<<20 + 1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !a.Made() || a.Backing() != BackingFile || a.Generation() != 1 {
		t.Errorf("made %v backing %v generation %d", a.Made(), a.Backing(), a.Generation())
	}
	h := a.Header()
	if h.Size != 5<<20+4096 || h.Align != 4096 || h.CreatorPID != os.Getpid() || h.CreatorStart == 0 {
		t.Errorf("header %+v", h)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != h.Size {
		t.Errorf("file mode %v size %d", fi.Mode(), fi.Size())
	}
	// Another handle (another open file description, as another process
	// has) attaches to the same segment and sees the first one's writes.
	b, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Made() || b.Header() != h || b.Generation() != 1 {
		t.Errorf("attached: made %v header %+v generation %d", b.Made(), b.Header(), b.Generation())
	}
	a.Bytes()[h.DataOff] = 0xAB
	if b.Bytes()[h.DataOff] != 0xAB {
		t.Error("a write through one mapping is not seen through the other")
	}
	// Create on an existing segment attaches: it does not make it anew.
	c, err := Open(path, Options{Create: true, Size: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Made() || c.Header().Size != h.Size || c.Bytes()[h.DataOff] != 0xAB {
		t.Error("Create on an existing segment made it anew")
	}
}

func TestOpenRefusals(t *testing.T) {
	dir := shmDir(t)
	// Missing, without Create, with and without waiting.
	if _, err := Open(filepath.Join(dir, "none"), Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	_, err := Open(filepath.Join(dir, "none"), Options{Wait: 30 * time.Millisecond})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "did not appear within 30ms") {
		t.Errorf("missing after wait: %v", err)
	}
	// Something else at the path is never made over, even with Create.
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte(strings.Repeat("not a segment ", 1000)), 0o600)
	if _, err := Open(other, Options{Create: true, Size: 5 << 20}); !errors.Is(err, ErrNotSegment) {
		t.Errorf("foreign file: %v", err)
	}
	if b, _ := os.ReadFile(other); !strings.HasPrefix(string(b), "not a segment") {
		t.Error("a foreign file was overwritten")
	}
	// Modes wider than 0600 are refused unless the segment is shared.
	wide := filepath.Join(dir, "wide")
	s, err := Open(wide, Options{Create: true, Size: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.Chmod(wide, 0o644)
	_, err = Open(wide, Options{})
	if err == nil || !strings.Contains(err.Error(), "mode 0644") || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("wide mode: %v", err)
	}
	if s, err := Open(wide, Options{Shared: true}); err != nil {
		t.Errorf("shared: %v", err)
	} else {
		s.Close()
	}
	// No size to make with.
	if _, err := Open(filepath.Join(dir, "nosize"), Options{Create: true}); err == nil || !strings.Contains(err.Error(), "no size") {
		t.Errorf("no size: %v", err)
	}
	// A directory.
	if _, err := Open(dir, Options{}); err == nil {
		t.Error("a directory opened as a segment")
	}
}

// TestUnfinished: a segment whose maker died before storing the version
// waits (attach) or is made anew (create), its generation bumped.
func TestUnfinished(t *testing.T) {
	path := filepath.Join(shmDir(t), "seg")
	s, err := Open(path, Options{Create: true, Size: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s.u32(offVersion).Store(0) // as if its maker died before the last store
	s.Close()
	_, err = Open(path, Options{Wait: 20 * time.Millisecond})
	if !errors.Is(err, ErrNotReady) {
		t.Errorf("attach to an unfinished segment: %v", err)
	}
	s, err = Open(path, Options{Create: true, Size: 6 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Made() || s.Generation() != 2 || s.Header().Size != 6<<20 {
		t.Errorf("made %v generation %d size %d", s.Made(), s.Generation(), s.Header().Size)
	}
}

// TestMakerDiedBeforeHeader: a file whose maker died after reserving its
// space and before writing a byte of the header (all zero, as SIGKILL
// between fallocate and the first store leaves it) is not a foreign file:
// an attacher waits for it, a maker makes it.
func TestMakerDiedBeforeHeader(t *testing.T) {
	path := filepath.Join(shmDir(t), "seg")
	if err := os.WriteFile(path, make([]byte, 5<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{Wait: 20 * time.Millisecond})
	if !errors.Is(err, errEmptyDevice) || !strings.Contains(err.Error(), "did not appear") {
		t.Errorf("attach to a zero file: %v", err)
	}
	s, err := Open(path, Options{Create: true, Size: 5 << 20})
	if err != nil {
		t.Fatalf("make over a zero file: %v", err)
	}
	defer s.Close()
	if !s.Made() || s.Generation() != 1 {
		t.Errorf("made %v generation %d", s.Made(), s.Generation())
	}
	// A file with a foreign, non-zero header is still refused.
	other := filepath.Join(shmDir(t), "other")
	if err := os.WriteFile(other, append([]byte("NOTZFLOW"), make([]byte, 5<<20)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(other, Options{Create: true, Size: 5 << 20}); !errors.Is(err, ErrNotSegment) {
		t.Errorf("make over a foreign file: %v", err)
	}
	// A file shorter than a header (zflow shm ls meets them in a
	// directory) is refused, attaching or making, without a panic.
	short := filepath.Join(shmDir(t), "short")
	if err := os.WriteFile(short, []byte("not a segment"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, create := range []bool{false, true} {
		if _, err := Open(short, Options{Create: create, Size: 5 << 20}); err == nil {
			t.Errorf("open a 13-byte file (create %v): no error", create)
		}
	}
}

// TestConcurrentMakers: many openers with Create race; one makes the
// segment, the others wait for it and attach to the same generation.
func TestConcurrentMakers(t *testing.T) {
	path := filepath.Join(shmDir(t), "seg")
	var wg sync.WaitGroup
	segs := make([]*Segment, 8)
	errs := make([]error, 8)
	for i := range segs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			segs[i], errs[i] = Open(path, Options{Create: true, Size: 5 << 20, Wait: 10 * time.Second})
		}()
	}
	wg.Wait()
	made := 0
	for i, s := range segs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if s.Made() {
			made++
		}
		if s.Generation() != 1 {
			t.Errorf("opener %d sees generation %d", i, s.Generation())
		}
		defer s.Close()
	}
	if made != 1 {
		t.Errorf("%d openers made the segment, want 1", made)
	}
}

// TestFullTmpfs: a tmpfs too small for the segment gives an error at make
// time (reserved with fallocate), not a SIGBUS later. Needs root (mount).
func TestFullTmpfs(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	_, err := Open(filepath.Join(dir, "seg"), Options{Create: true, Size: 8 << 20})
	if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "file system is full") {
		t.Errorf("full tmpfs: %v", err)
	}
}

// TestHugetlbfs: a segment on hugetlbfs is aligned to the huge page and
// its space is reserved at make time. Needs root (mount, nr_hugepages).
func TestHugetlbfs(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("none", dir, "hugetlbfs", 0, "mode=0700"); err != nil {
		t.Skipf("cannot mount hugetlbfs: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	path := filepath.Join(dir, "seg")
	// More than the pool has free: refused at make time, with the hint.
	free := readHugepages(t, freeHugepagesFile)
	if _, err := Open(path, Options{Create: true, Size: (free + 4) * (2 << 20)}); !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "nr_hugepages") {
		t.Errorf("more than the free hugepages: %v", err)
	}
	os.Remove(path)
	raiseHugepages(t, 8)
	s, err := Open(path, Options{Create: true, Size: 7 << 20})
	if err != nil {
		t.Skipf("hugetlbfs segment: %v", err)
	}
	defer s.Close()
	h := s.Header()
	if s.Backing() != BackingHugetlbfs || h.Align != 2<<20 || h.Size != 8<<20 || h.DataOff != 2<<20 || h.Extents.Count != 1 {
		t.Errorf("backing %v header %+v", s.Backing(), h)
	}
	b, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s.Bytes()[h.DataOff+5] = 7
	if b.Bytes()[h.DataOff+5] != 7 {
		t.Error("not shared")
	}
}

// twoHandles makes a segment of size bytes on tmpfs (a) and opens it
// again (b: another open file description, as another process has); both
// are closed at the end of the test.
func twoHandles(t *testing.T, size int64) (path string, a, b *Segment) {
	t.Helper()
	path = filepath.Join(shmDir(t), "seg")
	a, err := Open(path, Options{Create: true, Size: size})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if b, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return path, a, b
}

func TestParticipants(t *testing.T) {
	_, a, b := twoHandles(t, 5<<20)
	pa, err := a.Attach(RoleProducer, "out")
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.Attach(RoleConsumer, "in")
	if err != nil {
		t.Fatal(err)
	}
	pb2, err := b.Attach(RoleConsumer, "in2")
	if err != nil {
		t.Fatal(err)
	}
	if pa.Slot() == pb.Slot() || pb.Slot() == pb2.Slot() {
		t.Fatalf("slots %d %d %d", pa.Slot(), pb.Slot(), pb2.Slot())
	}
	ps, err := a.Participants()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 {
		t.Fatalf("participants %+v", ps)
	}
	for _, p := range ps {
		if !p.Alive || p.PID != os.Getpid() {
			t.Errorf("participant %+v", p)
		}
	}
	pb2.Detach()
	b.Close() // releases pb's lock: its slot is free (a clean detach)
	ps, _ = a.Participants()
	if len(ps) != 1 || ps[0].Name != "out" || ps[0].Role != "producer" {
		t.Errorf("after detach and close: %+v", ps)
	}
	if got, _ := a.Reclaim(); len(got) != 0 {
		t.Errorf("reclaimed %+v from live or cleanly detached participants", got)
	}
}

func TestSlotsFull(t *testing.T) {
	s, err := Open(filepath.Join(shmDir(t), "seg"), Options{Create: true, Size: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < DefaultSlots; i++ {
		if _, err := s.Attach(RoleTool, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Attach(RoleTool, "one more"); !errors.Is(err, ErrFull) {
		t.Errorf("attach to a full table: %v", err)
	}
}

// TestKilledParticipant: a process killed with SIGKILL while attached is
// seen dead (its lock is gone) and its slot reclaimed; the next attach
// reuses it.
func TestKilledParticipant(t *testing.T) {
	if os.Getenv("ZFLOW_CXL_CHILD") != "" {
		childAttach(os.Getenv("ZFLOW_CXL_CHILD"))
		return
	}
	path := filepath.Join(shmDir(t), "seg")
	s, err := Open(path, Options{Create: true, Size: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cmd := startChild(t, "TestKilledParticipant", "ZFLOW_CXL_CHILD="+path)
	ps, err := s.Participants()
	if err != nil || len(ps) != 1 || !ps[0].Alive || ps[0].PID != cmd.Process.Pid {
		t.Fatalf("child attached: %+v %v", ps, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	ps, _ = s.Participants()
	if len(ps) != 1 || ps[0].Alive {
		t.Fatalf("after SIGKILL: %+v", ps)
	}
	got, err := s.Reclaim()
	if err != nil || len(got) != 1 || got[0].PID != cmd.Process.Pid || got[0].Name != "child" {
		t.Fatalf("reclaimed %+v %v", got, err)
	}
	if ps, _ := s.Participants(); len(ps) != 0 {
		t.Errorf("after reclaim: %+v", ps)
	}
}

func childAttach(path string) {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	if _, err := s.Attach(RoleConsumer, "child"); err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	fmt.Println("ready")
	select {}
}

const (
	nrHugepagesFile   = "/proc/sys/vm/nr_hugepages"
	freeHugepagesFile = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"
)

func readHugepages(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skip(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Skip(err)
	}
	return n
}

// raiseHugepages raises the 2 MiB pool by n pages for the test and puts
// it back at the end (never lowering it under another test's feet); it
// skips when the pages cannot be had.
func raiseHugepages(t *testing.T, n int64) {
	t.Helper()
	old := readHugepages(t, nrHugepagesFile)
	if err := os.WriteFile(nrHugepagesFile, []byte(strconv.FormatInt(old+n, 10)), 0o644); err != nil {
		t.Skipf("reserve hugepages: %v", err)
	}
	t.Cleanup(func() { os.WriteFile(nrHugepagesFile, []byte(strconv.FormatInt(old, 10)), 0o644) })
	if free := readHugepages(t, freeHugepagesFile); free < n {
		t.Skipf("only %d 2 MiB hugepages free after reserving %d more", free, n)
	}
}

// startChild runs this test binary's test name in a child process with
// env added, and returns once the child printed "ready" (it then holds
// what the test wants killed).
func startChild(t *testing.T, name, env string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$")
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make([]byte, 6)
	if _, err := out.Read(ready); err != nil || string(ready) != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q %v", ready, err)
	}
	return cmd
}

// TestWipe: what gc --remove does to a device, which cannot be unlinked,
// here on a file (the same bytes): never while another opener holds the
// make lock or a process is attached; then the version and the static
// header are zero, Open finds no segment, and the generation word stays
// for the next segment made there.
func TestWipe(t *testing.T) {
	path, a, b := twoHandles(t, 8<<20)
	p, err := b.Attach(RoleConsumer, "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.wipe(); err == nil || !strings.Contains(err.Error(), "attached meanwhile") {
		t.Errorf("wipe with a process attached: %v", err)
	}
	p.Detach()
	if ok, err := tryLock(b.fd, lockMake); !ok || err != nil {
		t.Fatalf("take the make lock: %v %v", ok, err)
	}
	if err := a.wipe(); !errors.Is(err, errMaking) {
		t.Errorf("wipe while another opener holds the make lock: %v", err)
	}
	unlock(b.fd, lockMake)
	b.Close()
	if _, err := DecodeHeader(path, a.mem, a.hdr.Size); err != nil {
		t.Fatalf("the refused wipes changed the header: %v", err)
	}
	if err := a.wipe(); err != nil {
		t.Fatal(err)
	}
	if !allZero(a.mem[:StaticBytes]) || a.Generation() != 1 {
		t.Errorf("after wipe: static header zero %v, generation %d", allZero(a.mem[:StaticBytes]), a.Generation())
	}
	if _, err := Open(path, Options{}); !errors.Is(err, ErrNotSegment) {
		t.Errorf("open after wipe: %v, want %v", err, ErrNotSegment)
	}
}

// TestShareWaitsWithoutBlockingTheMaker: a consumer of this process that
// waits in Share for the segment to appear does not stop a producer of the
// same process from making it through Share: both end with one mapping.
func TestShareWaitsWithoutBlockingTheMaker(t *testing.T) {
	path := filepath.Join(shmDir(t), "seg")
	type res struct {
		s   *Segment
		rel func() error
		err error
	}
	waiter := make(chan res, 1)
	go func() {
		s, rel, err := Share(path, Options{Wait: 20 * time.Second})
		waiter <- res{s, rel, err}
	}()
	time.Sleep(50 * time.Millisecond) // the waiter is in Open's wait (not asserted: either order must work)
	start := time.Now()
	s, rel, err := Share(path, Options{Create: true, Size: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	r := <-waiter
	if r.err != nil {
		t.Fatalf("the waiting sharer: %v (after %v)", r.err, time.Since(start))
	}
	defer r.rel()
	if r.s != s && r.s.Generation() != s.Generation() {
		t.Fatalf("the two sharers see generations %d and %d", r.s.Generation(), s.Generation())
	}
}
