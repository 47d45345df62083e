//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
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
		// The segment's 64 pages, and room for the consumers' own arenas.
		const nr = "/proc/sys/vm/nr_hugepages"
		old, err := os.ReadFile(nr)
		if err != nil {
			t.Skip(err)
		}
		defer os.WriteFile(nr, old, 0o644)
		if err := os.WriteFile(nr, []byte("200"), 0o644); err != nil {
			t.Skipf("reserve hugepages: %v", err)
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
