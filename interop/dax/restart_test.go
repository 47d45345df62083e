//go:build linux

package dax

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zflowdev/zflow/cxl"
)

// TestDAXProducerKilled is the restart case: a producer on the device is
// killed (SIGKILL) while it waits for a consumer; `zflow shm gc` reclaims
// its slot; a new producer and a consumer then use the same segment (no
// new generation), and the consumer gets the killed producer's batches
// followed by the rest of the input from the new producer: the input once.
func TestDAXProducerKilled(t *testing.T) {
	guestDevice(t)
	wipeDevice(t)
	dir := t.TempDir()
	want := directRun(t, dir)
	first := start(t, dir, "killed", producerYAML())
	// With no consumer the producer publishes capacity batches, then
	// waits: poll the segment until it is there.
	var published uint64
	deadline := time.Now().Add(60 * time.Second)
	for published < capacity {
		if time.Now().After(deadline) {
			t.Fatalf("the producer published %d batches in 60 s, want %d", published, capacity)
		}
		time.Sleep(50 * time.Millisecond)
		s, err := cxl.Open(devPath, cxl.Options{Shared: true})
		if err != nil {
			continue // not made yet
		}
		r, err := s.Inspect()
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Channels) == 1 {
			published = r.Channels[0].Published
		}
	}
	first.cmd.Process.Signal(syscall.SIGKILL)
	err := first.cmd.Wait()
	before := inspect(t)
	published = before.Channels[0].Published
	t.Logf("producer killed (%v) after publishing %d batches: generation %d, %d processes recorded, %d free extents of %d", err, published, before.Generation, len(before.Participants), before.FreeExtents, before.Extents)
	out := zflow(t, 0, "shm", "gc", devPath)
	t.Logf("zflow shm gc: %s", strings.TrimSpace(out))
	if !strings.Contains(out, "reclaimed slot") || !strings.Contains(out, "(dead)") {
		t.Errorf("gc after the kill: %q, want the dead producer's slot reclaimed", out)
	}
	after := inspect(t)
	for _, p := range after.Participants {
		if p.Alive {
			t.Errorf("after gc: %+v is alive", p)
		}
	}
	t.Logf("after gc: %d processes recorded, %d free extents, %d retired (held for the consumer)", len(after.Participants), after.FreeExtents, after.Retired)

	// The consumer gets what the killed producer published, then the rest
	// from its successor, which replays the same input and skips the rows
	// its predecessor published (resume: replay): every row once.
	expect := want
	cons := start(t, dir, "consumer", consumerYAML("out.csv"))
	prod := start(t, dir, "successor", producerYAML())
	checkRuns(t, dir, "out.csv", expect, prod, cons)
	r := inspect(t)
	if r.Generation != before.Generation {
		t.Errorf("generation %d after the restart, %d before: the segment was made anew instead of reused", r.Generation, before.Generation)
	}
	if len(r.Participants) != 0 || len(r.Channels) != 1 || r.Retired != 0 || r.Channels[0].Consumers[0].Acked != r.Channels[0].Published {
		t.Errorf("after the restart: %+v", r)
	}
	zflow(t, 0, "shm", "gc", "--remove", devPath)
}
