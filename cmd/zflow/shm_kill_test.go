//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zflowdev/zflow/cxl"
)

// TestShmSIGKILL kills the producer, the consumer or both with SIGKILL at
// random points of a stream through a segment, over and over (100 trials;
// ZFLOW_SHM_KILL_TRIALS sets how many, ZFLOW_SHM_KILL_SEED the random
// points), and restarts what it killed with the same pipeline, as a
// supervisor would. Every trial must end with both runs succeeding, the
// consumer's output exactly the direct run's (every row once, in order),
// and, after `zflow shm gc`, nobody attached, nothing retired and the
// segment's usage at its baseline (the channel's rings); every tenth trial
// removes the segment with gc --remove, so that the next one makes it
// again, and the last leaves no segment and no temporary file behind.
//
// What makes the output exact: the consumer acknowledges only once its
// CSV is committed (ack: commit), so a consumer run that dies leaves the
// whole stream to the next; a producer run that replaces a dead one skips
// the rows its predecessor published (resume: replay, the default), after
// completing the batch the dead one may have left on some rings only.
func TestShmSIGKILL(t *testing.T) {
	trials := 100
	if v := os.Getenv("ZFLOW_SHM_KILL_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("ZFLOW_SHM_KILL_TRIALS=%q: want a positive count", v)
		}
		trials = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("ZFLOW_SHM_KILL_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("ZFLOW_SHM_KILL_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("ZFLOW_SHM_KILL_SEED=%d ZFLOW_SHM_KILL_TRIALS=%d", seed, trials)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	dir := t.TempDir()
	bin := buildBinary(t, dir)
	shm, err := os.MkdirTemp("/dev/shm", "zflow-kill-test-")
	if err != nil {
		t.Skip(err)
	}
	defer os.RemoveAll(shm)
	seg := filepath.Join(shm, "seg")

	const rows = 150000
	gen := fmt.Sprintf(`
  g:
    type: generate
    rows: %d
    seed: 11
    columns:%s`, rows, tcpColumns)
	runOK(t, bin, dir, writeTemp(t, dir, "direct.yaml", "version: 1\nname: direct\nsources:"+gen+"\nsinks:\n  out: {type: csv, inputs: [g], path: direct.csv}\n"))
	want, err := os.ReadFile(filepath.Join(dir, "direct.csv"))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "direct.csv"))
	producer := writeTemp(t, dir, "producer.yaml", fmt.Sprintf(`
version: 1
name: producer
settings: {batch_rows: 4096, memory: {arena: cxl, path: %s, size: 64MiB}}
sources:%s
sinks:
  out: {type: shm_out, inputs: [g], path: %s, channel: trades, capacity: 64, size: 64MiB, wait: 30s}
`, seg, gen, seg))
	consumer := writeTemp(t, dir, "consumer.yaml", fmt.Sprintf(`
version: 1
name: consumer
settings: {memory: {arena: plain}}
sources:
  in: {type: shm_in, path: %s, channel: trades, wait: 30s, ack: commit}
sinks:
  out: {type: csv, inputs: [in], path: out.csv}
`, seg))
	out := filepath.Join(dir, "out.csv")

	var baseline int64 = -1
	var clean time.Duration
	landed, finished := map[string]int{}, map[string]int{}
	for trial := range trials {
		// Trial 0 runs without a kill: its length bounds the random points,
		// and its segment usage after gc is the baseline.
		victims := []string{"producer", "consumer", "both"}[rng.IntN(3)]
		if trial == 0 {
			victims = ""
		}
		var at time.Duration
		if clean > 0 {
			at = time.Duration(rng.Int64N(int64(clean) + 1))
		}
		os.Remove(out)
		before := streamState(t, seg, 0)
		start := time.Now()
		p := startRun(t, bin, dir, producer)
		c := startRun(t, bin, dir, consumer)
		if victims != "" {
			time.Sleep(at)
			for _, v := range []struct {
				name string
				r    **shmRun
				yaml string
			}{{"producer", &p, producer}, {"consumer", &c, consumer}} {
				if victims != v.name && victims != "both" {
					continue
				}
				if !(*v.r).kill() {
					continue
				}
				landed[v.name]++
				// A supervisor restarts what it killed, unless its work was
				// done: a producer killed after it closed this trial's
				// stream, or a consumer after it acknowledged the stream's
				// end (its output committed). Restarted, either would wait
				// for a next stream.
				now := streamState(t, seg, before.published)
				if v.name == "producer" && now.closed || v.name == "consumer" && now.consumed {
					finished[v.name]++
					<-(*v.r).done
					(*v.r).done <- nil // its work was done: judged by the output and the segment
					continue
				}
				*v.r = startRun(t, bin, dir, v.yaml)
			}
		}
		perr, cerr := p.wait(), c.wait()
		if perr != nil || cerr != nil {
			t.Fatalf("trial %d (kill %q at %v): producer: %v\n%s\nconsumer: %v\n%s", trial, victims, at, perr, p.stderr.String(), cerr, c.stderr.String())
		}
		if trial == 0 {
			clean = time.Since(start)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("trial %d (kill %q at %v): %v", trial, victims, at, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("trial %d (kill %q at %v): the output is not the input: %s", trial, victims, at, csvDiff(got, want))
		}
		if code, o, e := zflowRun(t, "shm", "gc", seg); code != 0 {
			t.Fatalf("trial %d: shm gc: %d %s %s", trial, code, o, e)
		}
		rep := inspectSegment(t, seg)
		if len(rep.Participants) != 0 || rep.Retired != 0 || len(rep.Channels) != 1 {
			t.Fatalf("trial %d (kill %q at %v): after gc: %d participants, %d extents retired, %d channels", trial, victims, at, len(rep.Participants), rep.Retired, len(rep.Channels))
		}
		if baseline < 0 {
			baseline = rep.Used()
		}
		if rep.Used() != baseline {
			t.Fatalf("trial %d (kill %q at %v): %d bytes of the segment in use after gc, baseline %d: %v", trial, victims, at, rep.Used(), baseline, rep.ByOwner)
		}
		if trial%10 == 9 || trial == trials-1 {
			if code, o, e := zflowRun(t, "shm", "gc", "--remove", seg); code != 0 || !strings.Contains(o, "removed") {
				t.Fatalf("trial %d: shm gc --remove: %d %s %s", trial, code, o, e)
			}
		}
	}
	t.Logf("%d trials, a clean run %v: SIGKILL landed on a running producer %d times (%d after it had closed its stream), on a running consumer %d times (%d after it had acknowledged the end)",
		trials, clean.Round(time.Millisecond), landed["producer"], finished["producer"], landed["consumer"], finished["consumer"])
	if trials >= 30 && (landed["producer"] < trials/6 || landed["consumer"] < trials/6) {
		t.Errorf("too few kills landed on a running process (%v of %d trials): the random points miss the runs", landed, trials)
	}
	left, _ := os.ReadDir(shm)
	if len(left) != 0 {
		t.Errorf("left in %s: %v", shm, left)
	}
	files, _ := os.ReadDir(dir)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	if want := []string{"consumer.yaml", "direct.yaml", "out.csv", "producer.yaml", "zflow"}; !slices.Equal(names, want) {
		t.Errorf("files left in the runs' directory: %v, want %v", names, want)
	}
}

// shmRun is a zflow run started by TestShmSIGKILL.
type shmRun struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

func startRun(t *testing.T, bin, dir, pipeline string) *shmRun {
	t.Helper()
	r := &shmRun{cmd: exec.Command(bin, "run", "--quiet", pipeline), done: make(chan error, 1)}
	r.cmd.Dir = dir
	r.cmd.Stderr = &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	return r
}

// kill sends SIGKILL and waits for the process; it says whether the
// process was still running (a kill that landed).
func (r *shmRun) kill() bool {
	select {
	case err := <-r.done:
		r.done <- err
		return false
	default:
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	err := <-r.done
	r.done <- err
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func (r *shmRun) wait() error {
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(2 * time.Minute):
		r.cmd.Process.Kill()
		return fmt.Errorf("still running after 2 minutes")
	}
}

func runOK(t *testing.T, bin, dir, pipeline string) {
	t.Helper()
	if err := startRun(t, bin, dir, pipeline).wait(); err != nil {
		t.Fatalf("%s: %v", pipeline, err)
	}
}

// stream is what TestShmSIGKILL reads of the channel between a kill and
// a restart.
type stream struct {
	published uint64 // batches and end markers, over every stream
	closed    bool   // a stream begun after `since` is closed: its producer finished
	consumed  bool   // its consumer acknowledged its end
}

// streamState reads the channel of the segment at seg (zero when there is
// no segment or channel yet): whether the stream that follows since
// published batches is closed or consumed.
func streamState(t *testing.T, seg string, since uint64) stream {
	t.Helper()
	if _, err := os.Stat(seg); err != nil {
		return stream{}
	}
	code, out, _ := zflowRun(t, "shm", "inspect", "--json", seg)
	var rep cxl.Report
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Channels) != 1 {
		return stream{} // still being made
	}
	ch := rep.Channels[0]
	st := stream{published: ch.Published}
	if ch.Published > since {
		st.closed = ch.Closed
		st.consumed = ch.Ended && len(ch.Consumers) == 1 && ch.Consumers[0].Acked == ch.Published
	}
	return st
}

func inspectSegment(t *testing.T, seg string) *cxl.Report {
	t.Helper()
	code, out, e := zflowRun(t, "shm", "inspect", "--json", seg)
	if code != 0 {
		t.Fatalf("shm inspect: %d %s", code, e)
	}
	var rep cxl.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}

// csvDiff says how got differs from want, line by line: counts and the
// first line that differs (the id column says which row is missing or
// doubled).
func csvDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("%d lines, want %d; line %d is %q, want %q", len(g), len(w), i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(g), len(w))
}
