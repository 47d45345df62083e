//go:build linux

package dax

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/cxl"
)

// The producer's batches and how many a consumer may hold.
const (
	batchRows = 9000
	capacity  = 4
)

// columns are the generated batches' columns, the same in every run.
const columns = `[{name: id, type: int64, sequence: true}, {name: sym, type: string, cardinality: 50, null_ratio: 0.1},
    {name: px, type: float64, min: 1, max: 100}, {name: ok, type: bool}]`

// opJSON is one operator of a `zflow run --json` summary.
type opJSON struct {
	ID          string           `json:"id"`
	RowsIn      int64            `json:"rows_in"`
	RowsOut     int64            `json:"rows_out"`
	BytesOut    int64            `json:"bytes_out"`
	BytesCopied int64            `json:"bytes_copied"`
	Copies      map[string]int64 `json:"copies"`
	References  map[string]int64 `json:"by_reference"`
}

// summary is the part of a `zflow run --json` summary the checks read.
type summary struct {
	Operators []opJSON `json:"operators"`
	Memory    struct {
		Arena     string           `json:"arena"`
		Path      string           `json:"path"`
		ByBacking map[string]int64 `json:"mapped_by_backing"`
	} `json:"memory"`
}

func (s summary) op(t *testing.T, id string) opJSON {
	t.Helper()
	for _, o := range s.Operators {
		if o.ID == id {
			return o
		}
	}
	t.Fatalf("no operator %s in the summary %+v", id, s)
	return opJSON{}
}

// proc is a started `zflow run --json`.
type proc struct {
	name      string
	cmd       *exec.Cmd
	out, errb bytes.Buffer
}

// start starts `zflow run --quiet --json` of the pipeline yaml in dir.
func start(t *testing.T, dir, name, yaml string) *proc {
	t.Helper()
	file := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: exec.Command(zflowBin(), "run", "--quiet", "--json", file)}
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errb
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A test that fails before waiting for p leaves no process behind.
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// wait waits for p and decodes its summary.
func (p *proc) wait(t *testing.T) summary {
	t.Helper()
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", p.name, err, p.errb.String())
	}
	var s summary
	if err := json.Unmarshal(p.out.Bytes(), &s); err != nil {
		t.Fatalf("%s's summary: %v\n%s", p.name, err, p.out.String())
	}
	return s
}

// inspect is `zflow shm inspect --json` of the device.
func inspect(t *testing.T) cxl.Report {
	t.Helper()
	out := zflow(t, 0, "shm", "inspect", "--json", devPath)
	var r cxl.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("zflow shm inspect --json: %v\n%s", err, out)
	}
	return r
}

// TestDAXExchange is checks 2 and 3: two zflow processes exchange batches
// through /dev/dax0.0; gc --remove wipes the segment; a second exchange
// makes it anew.
func TestDAXExchange(t *testing.T) {
	d := guestDevice(t)
	wipeDevice(t)
	dir := t.TempDir()
	want := directRun(t, dir)
	var gens []uint64
	for round := 1; round <= 2; round++ {
		ok := t.Run(fmt.Sprintf("round=%d", round), func(t *testing.T) {
			r := exchange(t, d, dir, round, want)
			gens = append(gens, r.Generation)
			// gc --remove on a device wipes the header: the device stays,
			// and is no segment until the next run makes one.
			out := zflow(t, 0, "shm", "gc", "--remove", devPath)
			t.Logf("zflow shm gc --remove: %s", strings.TrimSpace(out))
			if !strings.Contains(out, "wiped") {
				t.Errorf("gc --remove on the device: %q, want the header wiped", out)
			}
			if fi, err := os.Stat(devPath); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
				t.Fatalf("after gc --remove: %s: %v", devPath, err)
			}
			if _, err := cxl.Open(devPath, cxl.Options{}); !errors.Is(err, cxl.ErrNotSegment) {
				t.Errorf("after gc --remove, opening the device: %v, want %v", err, cxl.ErrNotSegment)
			}
			if ls := zflow(t, 0, "shm", "ls", "/dev"); !strings.Contains(ls, "no zflow segments in /dev") {
				t.Errorf("after gc --remove, zflow shm ls /dev:\n%s", ls)
			}
			// A consumer waits for a segment on the wiped device as for a
			// file to appear, and says so when none did.
			lone := start(t, dir, fmt.Sprintf("lone%d", round), fmt.Sprintf(`version: 1
name: lone
settings: {memory: {arena: plain}}
sources:
  in: {type: shm_in, path: %s, channel: trades, wait: 2s}
sinks:
  out: {type: discard, inputs: [in]}
`, devPath))
			err := lone.cmd.Wait()
			t.Logf("a consumer alone on the wiped device: %v: %s", err, strings.TrimSpace(lone.errb.String()))
			if err == nil || !strings.Contains(lone.errb.String(), "did not appear within 2s") {
				t.Errorf("a consumer alone on the wiped device: %v\n%s", err, lone.errb.String())
			}
		})
		if !ok {
			break
		}
	}
	if len(gens) == 2 && gens[1] != gens[0]+1 {
		t.Errorf("generations %v: the second round should have made the segment anew over the wiped one", gens)
	}
}

// wipeDevice starts a test from a device without a segment: one another
// test left would be attached to, not made (gc --remove wipes it, as
// TestDAXExchange checks).
func wipeDevice(t *testing.T) {
	t.Helper()
	s, err := cxl.Open(devPath, cxl.Options{})
	if err != nil {
		if !errors.Is(err, cxl.ErrNotSegment) {
			t.Fatalf("open %s: %v", devPath, err)
		}
		return
	}
	s.Close()
	zflow(t, 0, "shm", "gc", "--remove", devPath)
}

// directRun is the CSV of the generated rows, written by a run that does
// not cross a process boundary.
func directRun(t *testing.T, dir string) []byte {
	t.Helper()
	start(t, dir, "direct", fmt.Sprintf(`version: 1
name: direct
sources:
  g: {type: generate, rows: %d, seed: 5, columns: %s}
sinks:
  out: {type: csv, inputs: [g], path: direct.csv}
`, rows, columns)).wait(t)
	want, err := os.ReadFile(filepath.Join(dir, "direct.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return want
}

// producerYAML and consumerYAML are the two sides of an exchange through
// the device's channel "trades".
func producerYAML() string {
	return fmt.Sprintf(`version: 1
name: producer
settings: {batch_rows: %d, memory: {arena: cxl, path: %s, size: 64MiB}}
sources:
  g: {type: generate, rows: %d, seed: 5, columns: %s}
sinks:
  out: {type: shm_out, inputs: [g], path: %s, channel: trades, consumers: 1, capacity: %d}
`, batchRows, devPath, rows, columns, devPath, capacity)
}

func consumerYAML(csv string) string {
	return fmt.Sprintf(`version: 1
name: consumer
settings: {memory: {arena: plain}}
sources:
  in: {type: shm_in, path: %s, channel: trades, wait: 60s}
sinks:
  out: {type: csv, inputs: [in], path: %s}
`, devPath, csv)
}

// exchange runs a producer and a consumer through the device and checks
// the consumer's output, both ledgers and the segment's geometry.
func exchange(t *testing.T, d device, dir string, round int, want []byte) cxl.Report {
	// The consumer starts first: it finds the device without a segment
	// (zero, or wiped by the previous round) and waits for the producer
	// to make one, as it would wait for a file to appear.
	csv := fmt.Sprintf("out%d.csv", round)
	cons := start(t, dir, fmt.Sprintf("consumer%d", round), consumerYAML(csv))
	prod := start(t, dir, fmt.Sprintf("producer%d", round), producerYAML())
	checkRuns(t, dir, csv, want, prod, cons)
	r := inspect(t)
	t.Logf("zflow shm inspect --json: backing %s, size %d, align %d, generation %d, extents %d of %d bytes, data from sysfs: size %d align %d",
		r.Backing, r.Size, r.Align, r.Generation, r.Extents, r.ExtentSize, d.size, d.align)
	if r.Backing != "devdax" || r.Size != d.size/d.align*d.align || r.Align != d.align || r.ExtentSize%d.align != 0 {
		t.Errorf("the segment on %s: backing %s, size %d, align %d, extent %d; sysfs says size %d, align %d",
			devPath, r.Backing, r.Size, r.Align, r.ExtentSize, d.size, d.align)
	}
	if len(r.Participants) != 0 || len(r.Channels) != 1 || !r.Channels[0].Ended || r.Channels[0].Consumers[0].Acked != r.Channels[0].Published {
		t.Errorf("after the runs: %+v", r)
	}
	ls := zflow(t, 0, "shm", "ls", "/dev")
	t.Logf("zflow shm ls /dev:\n%s", ls)
	listed := false
	for _, l := range strings.Split(ls, "\n") {
		listed = listed || strings.Contains(l, devPath) && strings.Contains(l, "devdax")
	}
	if !listed {
		t.Errorf("zflow shm ls /dev does not list the segment on %s:\n%s", devPath, ls)
	}
	return r
}

// checkRuns waits for a producer and its consumer and checks the
// consumer's CSV against want and both ledgers: nothing copied, the
// consumer's arrays all in the segment, the producer's arena on the device.
func checkRuns(t *testing.T, dir, csv string, want []byte, prod, cons *proc) {
	t.Helper()
	ps := prod.wait(t)
	cs := cons.wait(t)
	got, err := os.ReadFile(filepath.Join(dir, csv))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the consumer wrote %d bytes of CSV, want %d (or different rows)", len(got), len(want))
	}
	out, in := ps.op(t, "out"), cs.op(t, "in")
	t.Logf("producer: memory %s at %s, mapped by backing %v; shm_out rows in %d, copied %d", ps.Memory.Arena, ps.Memory.Path, ps.Memory.ByBacking, out.RowsIn, out.BytesCopied)
	t.Logf("consumer: shm_in rows out %d, bytes out %d, copied %d, by reference %v", in.RowsOut, in.BytesOut, in.BytesCopied, in.References)
	if out.BytesCopied != 0 || out.RowsIn != rows {
		t.Errorf("shm_out: rows in %d, copied %d %v", out.RowsIn, out.BytesCopied, out.Copies)
	}
	if ps.Memory.Arena == "cxl" && (ps.Memory.ByBacking["devdax"] == 0 || len(ps.Memory.ByBacking) != 1) {
		t.Errorf("the producer's arena on the device reports its memory as %v, want devdax only", ps.Memory.ByBacking)
	}
	if in.BytesCopied != 0 || in.References["shared segment"] == 0 || in.References["shared segment"] != in.BytesOut {
		t.Errorf("shm_in: out %d, copied %d, by reference %v", in.BytesOut, in.BytesCopied, in.References)
	}
	if m := ps.Memory; m.Arena != "cxl" || m.Path != devPath {
		t.Errorf("the producer's memory: %+v, want arena cxl at %s", m, devPath)
	}
}
