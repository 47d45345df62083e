// Command cluster measures zflow run --cluster kubernetes on the test
// cluster of make cluster-test (interop/kube/cluster.sh: a control plane
// and three kubelets in network namespaces of this one machine): the same
// CSV → Parquet pipeline over many files on one host (zflow run, no
// Kubernetes), on one worker pod and on three, and an aggregate per
// symbol after a repartition across hosts on one host and on three pods
// (the workers exchange rows over zflow streams), each a whole process timed
// from start to end, in turns (local, 1, 3, local, 1, 3, …), with the
// workers' own times from the run's summary and the bytes that crossed the
// hosts' veth links during each run. The hosts share this machine's CPUs,
// so the figures show what a cluster run costs, not how it scales.
//
//	go run ./bench/cmd/cluster [-reps 5] [-files 24] [-rows 200000]
//
// Writes bench/results/cluster.{json,md,png}. Needs root, make kube, make
// image and make build (make bench-cluster does all of it).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zflowdev/zflow/bench/internal/chart"
	"github.com/zflowdev/zflow/bench/internal/runinfo"
)

// Report is what the benchmark writes.
type Report struct {
	runinfo.Machine
	Files, Rows, Reps int
	InputBytes        int64
	Hosts             int
	Setups            []Setup
}

// Setup is one way of running the pipeline.
type Setup struct {
	Name    string `json:"name"`    // local, 1 worker, 3 workers
	Workers int    `json:"workers"` // 0 for local
	// Aggregate: the pipeline aggregates per symbol after a repartition
	// across hosts (the workers exchange rows), not CSV → Parquet.
	Aggregate bool      `json:"aggregate,omitempty"`
	Wall      []float64 `json:"wall_s"` // each run, whole process
	Median    float64   `json:"median_wall_s"`
	MBps      float64   `json:"input_mb_per_s"` // input CSV bytes / median wall
	// WorkerTimes are the workers' own run times (their summaries), per
	// run, per worker index.
	WorkerTimes [][]float64 `json:"worker_s,omitempty"`
	VethBytes   []int64     `json:"veth_bytes,omitempty"` // per run, all hosts' links, both ways
}

const pipeline = `version: 1
name: bench_cluster
settings:
  cluster: {workers: %d, host_paths: [%s]}
sources:
  trades: {type: csv, path: in/*.csv}
operators:
  large: {type: filter, inputs: [trades], where: "qty >= 100"}
  enriched: {type: project, inputs: [large], columns: ["*", "price * qty AS notional", "lower(symbol) AS sym"]}
sinks:
  out: {type: parquet, inputs: [enriched], path: out/%s.parquet, compression: zstd}
`

// aggPipeline aggregates per symbol after the workers exchanged their rows
// by symbol (repartition across: hosts).
const aggPipeline = `version: 1
name: bench_cluster_agg
settings:
  cluster: {workers: %d, host_paths: [%s]}
sources:
  trades: {type: csv, path: in/*.csv}
operators:
  large: {type: filter, inputs: [trades], where: "qty >= 100"}
  spread: {type: repartition, inputs: [large], by: [symbol], across: hosts}
  per_symbol: {type: aggregate, inputs: [spread], group_by: [symbol], aggregates: {trades: "count(*)", qty: "sum(qty)", low: "min(price)", high: "max(price)"}}
sinks:
  out: {type: parquet, inputs: [per_symbol], path: out/%s.parquet, compression: zstd}
`

func main() {
	reps := flag.Int("reps", 5, "runs of each setup")
	files := flag.Int("files", 24, "input CSV files")
	rows := flag.Int("rows", 200000, "rows per file")
	out := flag.String("out", "bench/results", "where to write cluster.{json,md,png}")
	flag.Parse()
	if err := run(*reps, *files, *rows, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench/cluster:", err)
		os.Exit(1)
	}
}

const hosts = 3

func run(reps, files, rows int, out string) error {
	repo, _ := os.Getwd()
	rep := &Report{Machine: runinfo.Start("cluster"), Files: files, Rows: rows, Reps: reps, Hosts: hosts}
	dir, err := os.MkdirTemp("", "zflow-bench-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if rep.InputBytes, err = writeInputs(dir, files, rows); err != nil {
		return err
	}
	state := filepath.Join(dir, "kube")
	cl := func(args ...string) error {
		cmd := exec.Command("bash", append([]string{filepath.Join(repo, "interop/kube/cluster.sh")}, args...)...)
		cmd.Env = append(os.Environ(), "ZK_DIR="+state, "ZK_BIN="+filepath.Join(repo, ".cache/kube"),
			"ZK_IMAGES="+filepath.Join(repo, "out/zflow-image.tar")+" "+filepath.Join(repo, "out/pause-image.tar"))
		b, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return nil
	}
	if err := cl("up", strconv.Itoa(hosts)); err != nil {
		return err
	}
	defer cl("down")
	kubeconfig := filepath.Join(state, "admin.kubeconfig")
	if err := waitReady(kubeconfig); err != nil {
		return err
	}
	bin := filepath.Join(repo, "bin/zflow")
	rep.Setups = []Setup{{Name: "one host (zflow run)"}, {Name: "1 worker pod", Workers: 1}, {Name: "3 worker pods", Workers: 3},
		{Name: "aggregate, one host (zflow run)", Aggregate: true}, {Name: "aggregate, 3 worker pods, exchange", Workers: 3, Aggregate: true}}
	for r := -1; r < reps; r++ { // run -1 warms the page cache and the images
		for i := range rep.Setups {
			s := &rep.Setups[i]
			name := fmt.Sprintf("s%d", i)
			p := filepath.Join(dir, name+".yaml")
			text := pipeline
			if s.Aggregate {
				text = aggPipeline
			}
			if err := os.WriteFile(p, []byte(fmt.Sprintf(text, max(s.Workers, 1), dir, name)), 0o644); err != nil {
				return err
			}
			args := []string{"run", p}
			if s.Workers > 0 {
				args = []string{"run", "--cluster", "kubernetes", "--kubeconfig", kubeconfig, p}
			}
			v0 := vethBytes()
			cmd := exec.Command(bin, args...)
			cmd.Dir = dir
			var buf bytes.Buffer
			cmd.Stdout, cmd.Stderr = io.Discard, &buf
			t0 := time.Now()
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s: %v\n%s", s.Name, err, buf.String())
			}
			wall := time.Since(t0).Seconds()
			veth := vethBytes() - v0
			if r < 0 {
				continue
			}
			s.Wall = append(s.Wall, wall)
			if s.Workers > 0 {
				s.WorkerTimes = append(s.WorkerTimes, workerTimes(buf.String()))
				s.VethBytes = append(s.VethBytes, veth)
			}
			fmt.Fprintf(os.Stderr, "run %d %-22s %.2fs\n", r, s.Name, wall)
		}
	}
	for i := range rep.Setups {
		s := &rep.Setups[i]
		s.Median = runinfo.Median(s.Wall)
		s.MBps = float64(rep.InputBytes) / 1e6 / s.Median
	}
	rep.LoadEnd = runinfo.LoadAvg()
	if err := runinfo.Save(out, "cluster", rep, func(path string) error { return draw(path, rep) }); err != nil {
		return err
	}
	return runinfo.WriteMarkdown(out, "cluster", "zflow on the test Kubernetes: one host, one worker pod, three", "bench-cluster",
		"Performance", rep.Command, func(w io.Writer) { markdown(w, rep) })
}

func writeInputs(dir string, files, rows int) (int64, error) {
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		return 0, err
	}
	var total int64
	for f := range files {
		var b strings.Builder
		b.WriteString("id,symbol,price,qty\n")
		for r := range rows {
			id := f*rows + r
			fmt.Fprintf(&b, "%d,SYM%02d,%d.%02d,%d\n", id, id%53, 10+id%490, id%100, 1+(id*7919)%1000)
		}
		total += int64(b.Len())
		if err := os.WriteFile(filepath.Join(dir, "in", fmt.Sprintf("t%03d.csv", f)), []byte(b.String()), 0o644); err != nil {
			return 0, err
		}
	}
	return total, nil
}

func waitReady(kubeconfig string) error {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("kubectl", "--kubeconfig", kubeconfig, "get", "nodes", "--no-headers").Output()
		if strings.Count(string(out), " Ready ") == hosts {
			return nil
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("the %d nodes are not Ready after 3 minutes", hosts)
}

// vethBytes is the bytes received and sent on the hosts' links (the root
// side of each veth pair).
func vethBytes() int64 {
	var n int64
	for i := 1; i <= hosts; i++ {
		for _, f := range []string{"rx_bytes", "tx_bytes"} {
			b, _ := os.ReadFile(fmt.Sprintf("/sys/class/net/zkv%d/statistics/%s", i, f))
			v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			n += v
		}
	}
	return n
}

// workerTimes reads the workers table of a cluster run's summary.
func workerTimes(out string) []float64 {
	var ts []float64
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 6 && strings.HasPrefix(f[1], "zkh") {
			if d, err := time.ParseDuration(f[3]); err == nil {
				ts = append(ts, d.Seconds())
			}
		}
	}
	return ts
}

func markdown(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "%s, %d CPUs, %s; load %s → %s. %d CSV files × %d rows (%.1f MB) → filter, two computed columns → zstd Parquet, and → filter → repartition by symbol across hosts → aggregate per symbol → zstd Parquet; %d runs of each setup in turns after one warm-up round, whole processes. The veth bytes of the exchange runs less those of the CSV → Parquet runs on 3 pods are what the exchange carried.\n\n",
		rep.CPU, rep.NumCPU, rep.Go, rep.LoadStart, rep.LoadEnd, rep.Files, rep.Rows, float64(rep.InputBytes)/1e6, rep.Reps)
	fmt.Fprintln(w, "| setup | median wall (s) | input MB/s | ÷ one host (same pipeline) | slowest worker, median (s) | veth bytes per run, median |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range rep.Setups {
		base := rep.Setups[0].Median
		if s.Aggregate {
			base = rep.Setups[3].Median
		}
		slow, veth := "—", "—"
		if len(s.WorkerTimes) > 0 {
			slow = fmt.Sprintf("%.2f", slowest(s))
			var vb []float64
			for _, v := range s.VethBytes {
				vb = append(vb, float64(v))
			}
			veth = runinfo.Short(int64(runinfo.Median(vb)))
		}
		fmt.Fprintf(w, "| %s | %.2f | %.1f | %.2f | %s | %s |\n", s.Name, s.Median, s.MBps, s.Median/base, slow, veth)
	}
	fmt.Fprintln(w, "\nPer run, each worker's own time (s):")
	fmt.Fprintln(w)
	for _, s := range rep.Setups[1:] {
		if s.Workers == 0 {
			continue
		}
		for r, ws := range s.WorkerTimes {
			fmt.Fprintf(w, "- %s, run %d: %s\n", s.Name, r, runinfo.Floats(ws, "%.2f"))
		}
	}
}

// slowest is the median over s's runs of its slowest worker's time; 0
// without workers.
func slowest(s Setup) float64 {
	if len(s.WorkerTimes) == 0 {
		return 0
	}
	m := make([]float64, len(s.WorkerTimes))
	for i, ws := range s.WorkerTimes {
		if len(ws) > 0 {
			m[i] = slices.Max(ws)
		}
	}
	return runinfo.Median(m)
}

func draw(path string, rep *Report) error {
	c := &chart.Bars{Title: "one host vs worker pods on the test Kubernetes (median wall s)", YLabel: "seconds", Format: "%.2f",
		Series: []string{"whole run", "slowest worker"},
		Notes:  []string{fmt.Sprintf("%s, %d CPU shared by the 3 hosts, %s, load %s; %s", rep.CPU, rep.NumCPU, rep.Go, rep.LoadStart, rep.Command)}}
	for _, s := range rep.Setups {
		c.Groups = append(c.Groups, chart.Group{Label: s.Name, Values: []float64{s.Median, slowest(s)}})
	}
	img := chart.NewCanvas(1000, 520)
	c.Draw(img, image.Rect(0, 0, 1000, 520))
	return chart.WritePNG(path, img)
}
