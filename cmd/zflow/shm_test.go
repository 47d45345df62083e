//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/cxl"
)

// TestShmThreeProcesses: one zflow process publishes batches allocated in
// a shared segment (arena: cxl), on tmpfs and on hugetlbfs, two other zflow
// processes read them through shm_in; both consumers' output equals the
// direct run's, and no side copies a byte of the batches (the copy
// ledger, read from the buffers' addresses on the consumer side).
func TestShmThreeProcesses(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	t.Run("tmpfs", func(t *testing.T) {
		shm, err := os.MkdirTemp("/dev/shm", "zflow-shm-test-")
		if err != nil {
			t.Skip(err)
		}
		defer os.RemoveAll(shm)
		shmThreeProcesses(t, bin, t.TempDir(), filepath.Join(shm, "trades"), "plain")
	})
	t.Run("hugetlbfs", func(t *testing.T) {
		mnt := t.TempDir()
		if err := unix.Mount("none", mnt, "hugetlbfs", 0, "mode=0700"); err != nil {
			t.Skipf("cannot mount hugetlbfs: %v", err)
		}
		defer unix.Unmount(mnt, unix.MNT_DETACH)
		// The segment's 64 pages, raised over what the pool has (other
		// tests may hold pages of it: never lower it under them).
		const nr = "/proc/sys/vm/nr_hugepages"
		const free = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"
		readInt := func(p string) int {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Skip(err)
			}
			n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return n
		}
		old := readInt(nr)
		if err := os.WriteFile(nr, []byte(strconv.Itoa(old+64)), 0o644); err != nil {
			t.Skipf("reserve hugepages: %v", err)
		}
		defer os.WriteFile(nr, []byte(strconv.Itoa(old)), 0o644)
		if f := readInt(free); f < 64 {
			t.Skipf("only %d 2 MiB hugepages free after reserving 64 more", f)
		}
		shmThreeProcesses(t, bin, t.TempDir(), filepath.Join(mnt, "trades"), "hugetlb")
	})
}

// shmThreeProcesses runs the producer and two consumers on the segment at
// seg, whose arena must report its memory as backing.
func shmThreeProcesses(t *testing.T, bin, dir, seg, backing string) {
	start := func(name, yaml string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
		cmd := exec.Command(bin, "run", "--quiet", "--json", writeTemp(t, dir, name+".yaml", yaml))
		cmd.Dir = dir
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out, &errb
	}
	gen := `
  g:
    type: generate
    rows: 400000
    seed: 5
    columns:` + tcpColumns
	direct, _, derr := start("direct", "version: 1\nname: direct\nsources:"+gen+"\nsinks:\n  out: {type: csv, inputs: [g], path: direct.csv}\n")
	if err := direct.Wait(); err != nil {
		t.Fatalf("direct: %v\n%s", err, derr)
	}
	want, err := os.ReadFile(filepath.Join(dir, "direct.csv"))
	if err != nil {
		t.Fatal(err)
	}
	prod, pout, perr := start("producer", fmt.Sprintf(`
version: 1
name: producer
settings: {batch_rows: 9000, memory: {arena: cxl, path: %s, size: 128MiB}}
sources:%s
sinks:
  out: {type: shm_out, inputs: [g], path: %s, channel: trades, consumers: 2, capacity: 4}
`, seg, gen, seg))
	type run struct {
		cmd       *exec.Cmd
		out, errb *bytes.Buffer
	}
	var cons []run
	for i := range 2 {
		c, o, e := start(fmt.Sprintf("consumer%d", i), fmt.Sprintf(`
version: 1
name: consumer%d
settings: {memory: {arena: plain}}  # leave the hugepages to the segment
sources:
  in: {type: shm_in, path: %s, channel: trades, wait: 30s}
sinks:
  out: {type: csv, inputs: [in], path: out%d.csv}
`, i, seg, i))
		cons = append(cons, run{c, o, e})
	}
	if err := prod.Wait(); err != nil {
		t.Fatalf("producer: %v\n%s", err, perr)
	}
	for i, c := range cons {
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("consumer %d: %v\n%s", i, err, c.errb)
		}
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("out%d.csv", i)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("consumer %d wrote %d bytes of CSV, the direct run %d (or different rows)", i, len(got), len(want))
		}
		in := opStats(t, c.out.Bytes(), "in")
		if in.BytesCopied != 0 || in.References["shared segment"] == 0 || in.References["shared segment"] != in.BytesOut {
			t.Errorf("consumer %d's shm_in: out %d, copied %d, by reference %v", i, in.BytesOut, in.BytesCopied, in.References)
		}
	}
	if out := opStats(t, pout.Bytes(), "out"); out.BytesCopied != 0 || out.RowsIn != 400000 {
		t.Errorf("shm_out: rows in %d, copied %d %v", out.RowsIn, out.BytesCopied, out.Copies)
	}
	var sum struct {
		Memory struct {
			Arena     string           `json:"arena"`
			Path      string           `json:"path"`
			ByBacking map[string]int64 `json:"mapped_by_backing"`
		} `json:"memory"`
	}
	if err := json.Unmarshal(pout.Bytes(), &sum); err != nil {
		t.Fatal(err)
	}
	if m := sum.Memory; m.Arena != "cxl" || m.Path != seg || m.ByBacking[backing] == 0 {
		t.Errorf("the producer's memory: %+v, want arena cxl at %s on %s", m, seg, backing)
	}
	// Afterwards: nobody attached, every batch acknowledged by both
	// consumers, and gc --remove leaves no segment behind.
	rep := inspectSegment(t, seg)
	if len(rep.Participants) != 0 || len(rep.Channels) != 1 || len(rep.Channels[0].Consumers) != 2 || !rep.Channels[0].Ended || !rep.Channels[0].Done || !rep.Channels[0].Closed {
		t.Fatalf("after the runs: %+v", rep)
	}
	for k, c := range rep.Channels[0].Consumers {
		if c.Acked != rep.Channels[0].Published || c.Slot != -1 {
			t.Errorf("consumer %d: %+v of %d published", k, c, rep.Channels[0].Published)
		}
	}
	if code, out, e := zflowRun(t, "shm", "gc", "--remove", seg); code != 0 || !strings.Contains(out, "removed") {
		t.Fatalf("shm gc --remove: %d %s %s", code, out, e)
	}
	if _, err := os.Stat(seg); !os.IsNotExist(err) {
		t.Errorf("the segment is still there after gc --remove: %v", err)
	}
}

type opJSON struct {
	ID          string           `json:"id"`
	RowsIn      int64            `json:"rows_in"`
	BytesOut    int64            `json:"bytes_out"`
	BytesCopied int64            `json:"bytes_copied"`
	Copies      map[string]int64 `json:"copies"`
	References  map[string]int64 `json:"by_reference"`
}

// opStats finds operator id in a --json summary.
func opStats(t *testing.T, summary []byte, id string) opJSON {
	t.Helper()
	var sum struct {
		Operators []opJSON `json:"operators"`
	}
	if err := json.Unmarshal(summary, &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, summary)
	}
	for _, o := range sum.Operators {
		if o.ID == id {
			return o
		}
	}
	t.Fatalf("no operator %s in %s", id, summary)
	return opJSON{}
}

// TestShmCommands: ls finds segments and skips other files, inspect shows
// a dead process as dead, gc reclaims it and keeps a segment with batches
// pending, and bad arguments are usage errors.
func TestShmCommands(t *testing.T) {
	if seg := os.Getenv("ZFLOW_SHM_CHILD"); seg != "" {
		s, err := cxl.Open(seg, cxl.Options{})
		if err == nil {
			_, err = s.Attach(cxl.RoleProducer, "killed")
		}
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		fmt.Println("ready")
		select {}
	}
	dir, err := os.MkdirTemp("/dev/shm", "zflow-shm-cmd-")
	if err != nil {
		t.Skip(err)
	}
	defer os.RemoveAll(dir)
	seg := filepath.Join(dir, "seg")
	s, err := cxl.Open(seg, cxl.Options{Create: true, Size: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "other"), []byte("not a segment"), 0o600)
	code, out, _ := zflowRun(t, "shm", "ls", dir)
	if code != 0 || !strings.Contains(out, seg) || strings.Contains(out, "other") {
		t.Errorf("ls: %d\n%s", code, out)
	}
	// Another process attaches and is killed.
	if _, err := s.Attach(cxl.RoleConsumer, "gone"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestShmCommands$")
	cmd.Env = append(os.Environ(), "ZFLOW_SHM_CHILD="+seg)
	pipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make([]byte, 6)
	if _, err := pipe.Read(ready); err != nil || string(ready) != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q %v", ready, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	code, out, _ = zflowRun(t, "shm", "inspect", seg)
	if code != 0 || !strings.Contains(out, `producer "killed"`) || !strings.Contains(out, "DEAD") || !strings.Contains(out, `consumer "gone"`) {
		t.Errorf("inspect:\n%s", out)
	}
	code, out, _ = zflowRun(t, "shm", "gc", "--remove", seg)
	if code != 0 || !strings.Contains(out, `reclaimed slot`) || !strings.Contains(out, "killed") || !strings.Contains(out, "kept: 1 process(es) attached") {
		t.Errorf("gc:\n%s", out)
	}
	s.Close()
	for _, args := range [][]string{{"shm"}, {"shm", "frob"}, {"shm", "inspect"}, {"shm", "gc", "a", "b"}} {
		if code, _, _ := zflowRun(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, _, e := zflowRun(t, "shm", "inspect", filepath.Join(dir, "other")); code != exitFailure || !strings.Contains(e, "not a zflow segment") {
		t.Errorf("inspect a file that is not a segment: %d %s", code, e)
	}
}
