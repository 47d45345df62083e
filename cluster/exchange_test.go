package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/cluster"
	"github.com/zflowdev/zflow/engine"
)

// aggPipeline sums qty per symbol over every CSV file of in/, after a
// repartition across hosts by symbol.
func aggPipeline(dir string, workers int, by string) string {
	return fmt.Sprintf(`version: 1
name: Per Symbol
settings:
  memory: {arena: heap}
  cluster: {workers: %d, host_paths: [%s]}
sources:
  trades: {type: csv, path: in/*.csv}
operators:
  big: {type: filter, inputs: [trades], where: "qty >= 10"}
  spread: {type: repartition, inputs: [big], across: hosts%s}
  sums: {type: aggregate, inputs: [spread], group_by: [symbol], aggregates: {n: "count(*)", qty: "sum(qty)", top: "max(id)"}}
sinks:
  out: {type: csv, inputs: [sums], path: out/sums.csv}
`, workers, dir, by)
}

// meshes makes n meshes on loopback, at epoch 1.
func meshes(t *testing.T, n int, token [cluster.TokenSize]byte) []*cluster.Mesh {
	t.Helper()
	ms := make([]*cluster.Mesh, n)
	addrs := make([]string, n)
	for i := range n {
		m, err := cluster.NewMesh(i, n, token, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ms[i], addrs[i] = m, m.Addr().String()
		t.Cleanup(func() { m.Close() })
	}
	for _, m := range ms {
		if err := m.SetEpoch(1, addrs); err != nil {
			t.Fatal(err)
		}
	}
	return ms
}

// runStage runs every worker of job at once, worker i over peers[i].
func runStage(t testing.TB, job *cluster.Job, peers []engine.Peers, attempt string) []cluster.Report {
	t.Helper()
	reps := make([]cluster.Report, job.Workers)
	var wg sync.WaitGroup
	for i := range job.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := zflow.Parse(job.Src, job.File, zflow.WithRewrite(func(g *engine.Graph) error {
				return job.WorkerGraph(g, i, attempt, peers[i])
			}))
			if err != nil {
				reps[i] = cluster.Report{Index: i, Err: err.Error()}
				return
			}
			sum, err := p.Run(context.Background())
			reps[i] = cluster.NewReport(i, attempt, sum, err)
		}()
	}
	wg.Wait()
	return reps
}

// TestExchangeAcrossHosts: three workers, each reading its share of the
// files, send each other rows by symbol over loopback streams; their
// aggregates, published together, are exactly one process's.
func TestExchangeAcrossHosts(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the meshes close
	dir := t.TempDir()
	writeInputs(t, dir, 9, 3000)
	for _, by := range []string{", by: [symbol]"} {
		one, err := cluster.Prepare([]byte(aggPipeline(dir, 1, by)), "p.yaml", cluster.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if len(one.Token) != 2*cluster.TokenSize || len(one.Exchanges) != 1 {
			t.Fatalf("one worker: token %q exchanges %v", one.Token, one.Exchanges)
		}
		if r := runWorker(t, one, 0, "solo"); r.Err != "" {
			t.Fatal(r.Err)
		}
		if err := one.Publish([]string{"solo"}); err != nil {
			t.Fatal(err)
		}
		one.Discard()
		want := rows(t, filepath.Join(dir, "out/sums.csv"))
		if len(want) != 7 {
			t.Fatalf("one worker: %d groups, want 7: %v", len(want), want)
		}

		job, err := cluster.Prepare([]byte(aggPipeline(dir, 3, by)), "p.yaml", cluster.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if len(job.Token) != 2*cluster.TokenSize {
			t.Fatalf("token %q", job.Token)
		}
		var token [cluster.TokenSize]byte
		copy(token[:], job.Token)
		ms := meshes(t, 3, token)
		reps := runStage(t, job, []engine.Peers{ms[0], ms[1], ms[2]}, "x")
		var crossed int64
		for _, r := range reps {
			if r.Err != "" {
				t.Fatalf("worker %d: %s", r.Index, r.Err)
			}
			for _, o := range r.Ops {
				if o.ID == "spread" {
					crossed += o.BytesCopied
				}
			}
		}
		if crossed == 0 {
			t.Fatal("no bytes crossed between the workers")
		}
		t.Logf("%d bytes crossed", crossed)
		if err := job.Publish([]string{"x", "x", "x"}); err != nil {
			t.Fatal(err)
		}
		job.Discard()
		got := rows(t, filepath.Join(dir, "out/sums.csv"))
		if !slices.Equal(got, want) {
			t.Fatalf("3 workers:\n%v\n1 worker:\n%v", got, want)
		}
		// Each group is on exactly one worker's part.
		parts, _ := filepath.Glob(filepath.Join(dir, "out/sums.csv/*"))
		total := 0
		for _, p := range parts {
			b, _ := os.ReadFile(p)
			total += strings.Count(string(b), "\n") - 1
		}
		if total != 7 {
			t.Fatalf("%d group rows over the parts, want 7", total)
		}
		if err := os.RemoveAll(filepath.Join(dir, "out")); err != nil {
			t.Fatal(err)
		}
	}
}

const exchangeBench = `version: 1
name: exchange_bench
settings:
  memory: {arena: heap}
  cluster: {workers: %d, host_paths: [%s]}
sources:
  gen:
    type: generate
    rows: %d
    batch_rows: %d
    columns:
      - {name: id, type: int64, min: 0, max: 1000000000}
      - {name: symbol, type: string, cardinality: 1000, prefix: S}
      - {name: qty, type: int64, min: 1, max: 1000}
operators:
  spread: {type: repartition, inputs: [gen], by: [symbol], across: %s}
  keyed: {type: filter, inputs: [spread], where: "qty > 0", parallelism: 3}
sinks:
  out: {type: discard, inputs: [keyed]}
`

// BenchmarkExchange is the cost of the exchange between workers: three
// workers in this process, each generating its share of the rows and
// repartitioning them by symbol among three instances of a filter,
// across hosts (two thirds of every batch cross a loopback zflow stream,
// as one gathered batch for each other worker) and across instances only
// (the same hashing and gathering, nothing crosses). The difference per
// batch sent is the exchange's cost per batch; b.N counts rounds of the
// three workers.
//
//	go test -run '^$' -bench Exchange -benchtime 5x ./cluster/
func BenchmarkExchange(b *testing.B) {
	const rows, batch = 1_200_000, 8192
	dir := b.TempDir()
	for _, across := range []string{"instances", "hosts"} {
		b.Run(across, func(b *testing.B) {
			job, err := cluster.Prepare([]byte(fmt.Sprintf(exchangeBench, 3, dir, rows, batch, across)), "p.yaml", cluster.Options{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			var token [cluster.TokenSize]byte
			copy(token[:], job.Token)
			var crossed int64
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				ms := make([]*cluster.Mesh, 3)
				addrs := make([]string, 3)
				for w := range 3 {
					if ms[w], err = cluster.NewMesh(w, 3, token, "127.0.0.1:0"); err != nil {
						b.Fatal(err)
					}
					addrs[w] = ms[w].Addr().String()
				}
				for _, m := range ms {
					m.SetEpoch(1, addrs)
				}
				b.StartTimer()
				reps := runStage(b, job, []engine.Peers{ms[0], ms[1], ms[2]}, fmt.Sprintf("a%d", i))
				b.StopTimer()
				for _, m := range ms {
					m.Close()
				}
				for _, r := range reps {
					if r.Err != "" {
						b.Fatal(r.Err)
					}
					for _, o := range r.Ops {
						if o.ID == "spread" && across == "hosts" {
							crossed += o.BytesCopied / 2 // sent and received
						}
					}
				}
				b.StartTimer()
			}
			sent := 2 * float64(3*((rows/3+batch-1)/batch)) // each source batch sends one to each other worker
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/sent, "ns/batch-sent")
			if across == "hosts" {
				b.ReportMetric(float64(crossed)/float64(b.N), "B-crossed/round")
			}
		})
	}
}

const stopSrc = `version: 1
name: x
settings:
  memory: {arena: heap}
sources:
  gen:
    type: generate
    rows: 1000000
    batch_rows: 4096
    columns:
      - {name: id, type: int64, min: 0, max: 1000000000}
      - {name: symbol, type: string, cardinality: 1000, prefix: S}
operators:
  spread: {type: repartition, inputs: [gen], by: [symbol], across: hosts}
  few: {type: limit, inputs: [spread], count: %d}
sinks:
  out: {type: discard, inputs: [few]}
`

// runShards runs srcs[i] as shard i of len(srcs) over meshes at epoch
// 1, with contexts ctxs, and returns each run's error (or a hang).
func runShards(t *testing.T, srcs []string, ctxs []context.Context) []error {
	t.Helper()
	ms := meshes(t, len(srcs), [cluster.TokenSize]byte{})
	errs := make([]error, len(srcs))
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := zflow.Parse([]byte(src), "p.yaml", zflow.WithRewrite(func(g *engine.Graph) error {
				g.Settings.Shard = engine.Shard{Index: i, Count: len(srcs), Peers: ms[i]}
				return nil
			}))
			if err == nil {
				_, err = p.Run(ctxs[i])
			}
			errs[i] = err
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the shards hang")
	}
	return errs
}

// TestExchangeDownstreamStops: a limit after the exchange is reached on
// one worker while the other still sends: the first keeps reading (and
// dropping) what arrives, so both end, without error.
func TestExchangeDownstreamStops(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	bg := context.Background()
	errs := runShards(t, []string{fmt.Sprintf(stopSrc, 1_000_000_000), fmt.Sprintf(stopSrc, 10)}, []context.Context{bg, bg})
	for i, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	}
}

// TestExchangeWorkerCancelled: a worker cancelled mid-run fails, and so
// does its peer, saying it was the exchange; neither hangs.
func TestExchangeWorkerCancelled(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	src := strings.Replace(fmt.Sprintf(stopSrc, 1_000_000_000), "rows: 1000000", "rows: 20000000", 1)
	errs := runShards(t, []string{src, src}, []context.Context{context.Background(), ctx})
	if errs[1] == nil || errs[0] == nil || !strings.Contains(errs[0].Error(), "repartition across hosts") {
		t.Fatalf("worker 0: %v; worker 1: %v", errs[0], errs[1])
	}
}

// TestExchangeLaterEpochWaits: a worker that starts epoch 2 before its
// peer has left epoch 1 dials it at once; the connection waits for the
// peer to get there, and both runs succeed.
func TestExchangeLaterEpochWaits(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ms := meshes(t, 2, [cluster.TokenSize]byte{})
	addrs := []string{ms[0].Addr().String(), ms[1].Addr().String()}
	src := fmt.Sprintf(stopSrc, 1_000_000_000)
	run := func(i int) chan error {
		ch := make(chan error, 1)
		go func() {
			p, err := zflow.Parse([]byte(src), "p.yaml", zflow.WithRewrite(func(g *engine.Graph) error {
				g.Settings.Shard = engine.Shard{Index: i, Count: 2, Peers: ms[i]}
				return nil
			}))
			if err == nil {
				_, err = p.Run(context.Background())
			}
			ch <- err
		}()
		return ch
	}
	ms[0].SetEpoch(2, addrs)
	c0 := run(0)
	time.Sleep(300 * time.Millisecond)
	ms[1].SetEpoch(2, addrs)
	c1 := run(1)
	if err0, err1 := <-c0, <-c1; err0 != nil || err1 != nil {
		t.Fatalf("worker 0: %v; worker 1: %v", err0, err1)
	}
}
