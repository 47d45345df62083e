package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zflowdev/zflow/internal/atomicfile"
)

// A run killed with SIGKILL leaves its temporary file; the next run of the
// same sink removes it, and only it: a live process's temporary file for the
// same path (this test's), a dead run's file for another path, a file of an
// earlier zflow version and a user's file all stay.
func TestSIGKILLLeftoversRemovedByNextRun(t *testing.T) {
	me := crashSelf(t)
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	final := filepath.Join(out, "big.parquet")
	if err := os.WriteFile(final, []byte("the old file"), 0o644); err != nil {
		t.Fatal(err)
	}
	dead := me
	dead.Start++ // this pid, another start time: a dead process
	keep := []string{
		// A live process's temporary file for the same final name: ours.
		atomicfile.FormatName("big.parquet", atomicfile.Tag{Owner: me, Rand: 7}, atomicfile.KindTemp),
		// A dead run's files for another final name.
		atomicfile.FormatName("small.parquet", atomicfile.Tag{Owner: dead, Rand: 8}, atomicfile.KindTemp),
		// An earlier zflow version's temporary file, a user's files.
		".big.parquet.tmp-123456",
		"notes.txt",
		"big.parquet.zflow-backup",
	}
	for _, n := range keep {
		if err := os.WriteFile(filepath.Join(out, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	endless := writeTemp(t, dir, "endless.yaml", `
version: 1
name: endless
sources:
  g: {type: generate, rows: 1000000000000, columns: [{name: qty, type: int64}, {name: s, type: string}]}
sinks:
  out: {type: parquet, inputs: [g], path: out/big.parquet, row_group_rows: 10000}
`)
	// Kill the run once its temporary file holds data.
	killed, pid := killWhenWritten(t, bin, dir, endless, func(pid int) string {
		ents, _ := os.ReadDir(out)
		for _, e := range ents {
			tag, k, ok := atomicfile.ParseName("big.parquet", e.Name())
			if ok && k == atomicfile.KindTemp && tag.PID == pid {
				if st, err := os.Stat(filepath.Join(out, e.Name())); err == nil && st.Size() > 0 {
					return e.Name()
				}
			}
		}
		return ""
	})
	if _, err := os.Stat(filepath.Join(out, killed)); err != nil {
		t.Fatalf("the killed run's temporary file: %v", err)
	}
	if b, _ := os.ReadFile(final); string(b) != "the old file" {
		t.Fatalf("the killed run changed the final file: %q", b)
	}

	// The next run of the same sink.
	small := writeTemp(t, dir, "small.yaml", `
version: 1
name: small
sources:
  g: {type: generate, rows: 100, columns: [{name: qty, type: int64}]}
sinks:
  out: {type: parquet, inputs: [g], path: out/big.parquet}
`)
	stderr := runNext(t, bin, dir, "run", small) // not --quiet: that leaves errors only, and the removal is a warning
	if !strings.Contains(stderr, killed) || !strings.Contains(stderr, "dead process "+strconv.Itoa(pid)) {
		t.Errorf("the next run did not log the removal of %s:\n%s", killed, stderr)
	}
	want := append(slices.Clone(keep), "big.parquet")
	slices.Sort(want)
	var got []string
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("out/ holds\n%q\nwant\n%q", got, want)
	}
	for _, n := range keep {
		if b, _ := os.ReadFile(filepath.Join(out, n)); string(b) != n {
			t.Errorf("%s changed: %q", n, b)
		}
	}
	if b, _ := os.ReadFile(final); !bytes.HasPrefix(b, []byte("PAR1")) {
		t.Errorf("the next run did not write the final file: %q", b[:min(len(b), 16)])
	}
}

// A partitioned run killed with SIGKILL leaves its temporary tree and the
// previous tree as it was; the next run of the same sink removes the
// temporary tree and publishes its own.
func TestSIGKILLPartitionedTree(t *testing.T) {
	crashSelf(t)
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	tree := filepath.Join(dir, "out", "tree")
	if err := os.MkdirAll(filepath.Join(tree, "k=old"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTemp(t, filepath.Join(tree, "k=old"), "part-0.csv", "n\n1\n")
	endless := writeTemp(t, dir, "endless.yaml", `
version: 1
name: endless
sources:
  g: {type: generate, rows: 1000000000000, columns: [{name: k, type: string, cardinality: 5}, {name: n, type: int64}]}
sinks:
  out: {type: csv, inputs: [g], path: out/tree, partition_by: [k]}
`)
	// Kill the run once its temporary tree holds data.
	killed, _ := killWhenWritten(t, bin, dir, endless, func(pid int) string {
		ents, _ := os.ReadDir(filepath.Join(dir, "out"))
		for _, e := range ents {
			tag, k, ok := atomicfile.ParseName("tree", e.Name())
			if !ok || k != atomicfile.KindTemp || tag.PID != pid {
				continue
			}
			parts, _ := filepath.Glob(filepath.Join(dir, "out", e.Name(), "k=*", "part-0.csv"))
			for _, p := range parts {
				if st, err := os.Stat(p); err == nil && st.Size() > 0 {
					return e.Name()
				}
			}
		}
		return ""
	})
	if got := strings.Join(dirList(t, tree), ","); got != "k=old" {
		t.Fatalf("the killed run changed the tree: %s", got)
	}
	small := writeTemp(t, dir, "small.yaml", `
version: 1
name: small
sources:
  g: {type: generate, rows: 100, columns: [{name: k, type: string, values: [a, b]}, {name: n, type: int64}]}
sinks:
  out: {type: csv, inputs: [g], path: out/tree, partition_by: [k]}
`)
	stderr := runNext(t, bin, dir, "run", "--quiet", "--log-level", "warn", small)
	if !strings.Contains(stderr, killed) {
		t.Errorf("the next run did not log the removal of %s:\n%s", killed, stderr)
	}
	if got := strings.Join(dirList(t, filepath.Join(dir, "out")), ","); got != "tree" {
		t.Errorf("left next to the tree: %s", got)
	}
	if got := strings.Join(dirList(t, tree), ","); got != "k=a,k=b" {
		t.Errorf("the tree is now %s", got)
	}
}

// crashSelf returns this process's owner tag; the test is skipped without
// /proc, which the tags are read from.
func crashSelf(t *testing.T) atomicfile.Owner {
	t.Helper()
	me, err := atomicfile.Self()
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	return me
}

// buildBinary builds the zflow binary into dir and returns its path; the
// test is skipped with -short. The command links io/uring (the storage
// backend, backends.go, and tcp_out's uring_zc), hence -checklinkname=0.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(dir, "zflow")
	if out, err := exec.Command("go", "build", "-ldflags=-checklinkname=0", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// killWhenWritten starts bin run --quiet pipeline in dir, polls written
// with the run's pid until it names the run's temporary file or tree
// holding data (for 30 s at the most), then kills the run with SIGKILL.
// It returns that name and the killed run's pid.
func killWhenWritten(t *testing.T, bin, dir, pipeline string, written func(pid int) string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, "run", "--quiet", pipeline)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	var killed string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if killed = written(pid); killed != "" {
			break
		}
	}
	if killed == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the run wrote no temporary file or tree in 30 s")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	return killed, pid
}

// runNext runs bin with args in dir, fails the test if the run fails, and
// returns what it wrote to stderr.
func runNext(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	next := exec.Command(bin, args...)
	next.Dir = dir
	var stderr bytes.Buffer
	next.Stderr = &stderr
	if err := next.Run(); err != nil {
		t.Fatalf("next run: %v\n%s", err, stderr.String())
	}
	return stderr.String()
}
