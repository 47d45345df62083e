// Command overhead measures the engine overhead of zflow outside `go test`:
// the core pipeline replay → filter → project → discard on the real executor
// against a plain loop making the same expr calls (Select, then Eval) over
// the same pre-generated batches, interleaved in one run, several times. It
// also runs the generate → filter → project → discard variant. It prints a
// markdown table and writes <out>/overhead.json and <out>/overhead.png.
//
// Run it from the repository root:
//
//	go run ./bench/cmd/overhead [-rows 4194304] [-reps 7] [-procs 1,2] [-out bench/results]
//	go run ./bench/cmd/overhead -replot    # redraw the chart from overhead.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/bench"
	"github.com/zflowdev/zflow/bench/internal/chart"
	"github.com/zflowdev/zflow/bench/internal/runinfo"
	"github.com/zflowdev/zflow/engine"
)

// Side is the figures of one side (loop, replay pipeline, generate
// pipeline) over the repetitions.
type Side struct {
	MedianMs           float64   `json:"median_ms"`
	MinMs              float64   `json:"min_ms"`
	CPUMs              float64   `json:"cpu_median_ms"` // user+system time of the whole process
	RowsPerSec         float64   `json:"rows_per_s"`    // input rows ÷ median time
	BytesPerSec        float64   `json:"bytes_per_s"`   // input payload ÷ median time
	AllocsPerBatch     float64   `json:"allocs_per_batch"`
	GoroutinesPerBatch float64   `json:"goroutines_per_batch"`
	RunsMs             []float64 `json:"runs_ms"`
}

// Result is one (procs, batch size) cell.
type Result struct {
	Procs     int   `json:"gomaxprocs"`
	BatchRows int   `json:"batch_rows"`
	Batches   int   `json:"batches"`
	Rows      int64 `json:"rows"`
	RowsOut   int64 `json:"rows_out"`
	Bytes     int64 `json:"bytes"`
	Loop      Side  `json:"loop"`
	Replay    Side  `json:"pipeline_replay"`
	Generate  Side  `json:"pipeline_generate"`
	Bare      Side  `json:"pipeline_bare"` // replay → project(*) → project(*) → discard
	// Paired per repetition, then the median.
	OverheadRatio  float64 `json:"overhead_ratio"`          // replay wall ÷ loop wall
	CPURatio       float64 `json:"cpu_ratio"`               // replay CPU ÷ loop CPU
	EdgeNsPerBatch float64 `json:"edge_ns_per_batch"`       // (replay − loop) ÷ (batches × edges)
	EngineAllocs   float64 `json:"engine_allocs_per_batch"` // replay − loop allocations per batch
	// The bare pipeline's median time ÷ (batches × edges): an edge crossing
	// measured directly, with no compute to subtract.
	BareEdgeNs float64 `json:"bare_edge_ns_per_batch"`
}

// Report is overhead.json.
type Report struct {
	runinfo.Machine
	Where    string   `json:"where"`
	Computed string   `json:"computed"`
	Edges    int      `json:"edges"`
	Reps     int      `json:"reps"`
	Results  []Result `json:"results"`
}

func main() {
	rows := flag.Int64("rows", 4<<20, "rows per run")
	reps := flag.Int("reps", 7, "measured repetitions of each side (after one warm-up)")
	batchList := flag.String("batches", "1024,8192,65536", "batch sizes, comma-separated")
	procList := flag.String("procs", "1,2", "GOMAXPROCS values, comma-separated")
	out := flag.String("out", "bench/results", "folder for overhead.json and overhead.png ('' writes nothing)")
	replot := flag.Bool("replot", false, "measure nothing: redraw <out>/overhead.png and reprint the table from <out>/overhead.json")
	flag.Parse()
	if *replot {
		var rep Report
		b, err := os.ReadFile(filepath.Join(*out, "overhead.json"))
		if err == nil {
			err = json.Unmarshal(b, &rep)
		}
		if err == nil {
			writeTable(os.Stdout, &rep)
			err = writeChart(filepath.Join(*out, "overhead.png"), &rep)
		}
		if err != nil {
			fatal(err)
		}
		return
	}
	batches, err := runinfo.Ints(*batchList)
	if err != nil {
		fatal(err)
	}
	procs, err := runinfo.Ints(*procList)
	if err != nil {
		fatal(err)
	}
	rep := Report{
		Machine: runinfo.Start("overhead"), Where: bench.Where, Computed: bench.Notional + " AS notional",
		Edges: bench.Edges, Reps: *reps,
	}
	for _, p := range procs {
		runtime.GOMAXPROCS(p)
		for _, b := range batches {
			r, err := measure(context.Background(), p, *rows, b, *reps)
			if err != nil {
				fatal(err)
			}
			rep.Results = append(rep.Results, r)
			fmt.Fprintf(os.Stderr, "procs=%d batch=%d: ratio %.3f\n", p, b, r.OverheadRatio)
		}
	}
	rep.LoadEnd = runinfo.LoadAvg()
	writeTable(os.Stdout, &rep)
	if *out == "" {
		return
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatal(err)
	}
	js, _ := json.MarshalIndent(&rep, "", "  ")
	if err := os.WriteFile(filepath.Join(*out, "overhead.json"), append(js, '\n'), 0o644); err != nil {
		fatal(err)
	}
	if err := writeChart(filepath.Join(*out, "overhead.png"), &rep); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %s\n", filepath.Join(*out, "overhead.json"), filepath.Join(*out, "overhead.png"))
}

type run struct {
	wall, cpu  time.Duration
	mallocs    uint64
	goroutines uint64
}

// measure runs the four sides (loop, replay, generate, bare) reps times, interleaved (their order rotates
// each repetition), after one warm-up of each.
func measure(ctx context.Context, procs int, rows int64, batch, reps int) (Result, error) {
	mem := memory.DefaultAllocator
	d, err := bench.Generate(ctx, mem, rows, batch)
	if err != nil {
		return Result{}, err
	}
	defer d.Release()
	loop, err := bench.NewLoop(d.Schema)
	if err != nil {
		return Result{}, err
	}
	replay, err := bench.Pipeline(d, rows, batch)
	if err != nil {
		return Result{}, err
	}
	gen, err := bench.Pipeline(nil, rows, batch)
	if err != nil {
		return Result{}, err
	}
	bare, err := bench.BarePipeline(d)
	if err != nil {
		return Result{}, err
	}
	var rowsOut int64
	sides := []func() error{
		func() error {
			r, err := loop.Run(ctx, mem, d)
			rowsOut = r.RowsOut
			return err
		},
		func() error { return checkRows(bench.RunPipeline(ctx, replay, mem))(&rowsOut) },
		func() error { return checkRows(bench.RunPipeline(ctx, gen, mem))(&rowsOut) },
		func() error { _, _, err := bench.RunPipeline(ctx, bare, mem); return err },
	}
	runs := make([][]run, len(sides))
	for i := -1; i < reps; i++ {
		for k := range sides {
			s := (k + max(i, 0)) % len(sides)
			runtime.GC()
			c0 := runinfo.CPU()
			c, err := bench.Measure(sides[s])
			if err != nil {
				return Result{}, fmt.Errorf("procs=%d batch=%d: %w", procs, batch, err)
			}
			if i >= 0 {
				runs[s] = append(runs[s], run{wall: c.Elapsed, cpu: runinfo.CPU() - c0, mallocs: c.Mallocs, goroutines: c.Goroutines})
			}
		}
	}
	nb := len(d.Batches)
	side := func(rs []run) Side {
		s := Side{}
		var walls, cpus, allocs, gors []float64
		for _, r := range rs {
			walls = append(walls, ms(r.wall))
			cpus = append(cpus, ms(r.cpu))
			allocs = append(allocs, float64(r.mallocs)/float64(nb))
			gors = append(gors, float64(r.goroutines)/float64(nb))
		}
		s.RunsMs = walls
		s.MedianMs, s.MinMs, s.CPUMs = runinfo.Median(walls), slices.Min(walls), runinfo.Median(cpus)
		s.RowsPerSec = float64(d.Rows) / (s.MedianMs / 1e3)
		s.BytesPerSec = float64(d.Bytes) / (s.MedianMs / 1e3)
		s.AllocsPerBatch = runinfo.Median(allocs)
		s.GoroutinesPerBatch = runinfo.Median(gors)
		return s
	}
	res := Result{
		Procs: procs, BatchRows: batch, Batches: nb, Rows: d.Rows, RowsOut: rowsOut, Bytes: d.Bytes,
		Loop: side(runs[0]), Replay: side(runs[1]), Generate: side(runs[2]), Bare: side(runs[3]),
	}
	res.BareEdgeNs = res.Bare.MedianMs * 1e6 / float64(nb*bench.Edges)
	var ratio, cpuRatio, edge []float64
	for i := range reps {
		l, p := runs[0][i], runs[1][i]
		ratio = append(ratio, p.wall.Seconds()/l.wall.Seconds())
		cpuRatio = append(cpuRatio, p.cpu.Seconds()/l.cpu.Seconds())
		edge = append(edge, float64(p.wall-l.wall)/float64(nb*bench.Edges))
	}
	res.OverheadRatio, res.CPURatio, res.EdgeNsPerBatch = runinfo.Median(ratio), runinfo.Median(cpuRatio), runinfo.Median(edge)
	res.EngineAllocs = res.Replay.AllocsPerBatch - res.Loop.AllocsPerBatch
	return res, nil
}

// checkRows makes sure a pipeline run delivered the loop's rows.
func checkRows(r bench.Result, _ engine.Summary, err error) func(*int64) error {
	return func(want *int64) error {
		if err != nil {
			return err
		}
		if *want != 0 && r.RowsOut != *want {
			return fmt.Errorf("pipeline delivered %d rows, the loop %d", r.RowsOut, *want)
		}
		return nil
	}
}

func writeTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "core pipeline vs plain loop — %s, %d CPU, %s; %d reps, medians; load %s → %s\n\n",
		rep.CPU, rep.NumCPU, rep.Go, rep.Reps, rep.LoadStart, rep.LoadEnd)
	fmt.Fprintln(w, "| GOMAXPROCS | batch | batches | loop ms | pipeline ms | overhead ratio | CPU ratio | edge ns/batch | bare edge ns/batch | loop Mrows/s | pipeline Mrows/s | generate Mrows/s | allocs/batch loop → pipeline (generate) | goroutines/batch loop → pipeline |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "| %d | %d | %d | %.1f | %.1f | %.3f | %.3f | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f → %.1f (%.1f) | %.1f → %.1f |\n",
			r.Procs, r.BatchRows, r.Batches, r.Loop.MedianMs, r.Replay.MedianMs, r.OverheadRatio, r.CPURatio,
			r.EdgeNsPerBatch, r.BareEdgeNs, r.Loop.RowsPerSec/1e6, r.Replay.RowsPerSec/1e6, r.Generate.RowsPerSec/1e6,
			r.Loop.AllocsPerBatch, r.Replay.AllocsPerBatch, r.Generate.AllocsPerBatch,
			r.Loop.GoroutinesPerBatch, r.Replay.GoroutinesPerBatch)
	}
}

func writeChart(path string, rep *Report) error {
	c := &chart.Bars{
		Title:  fmt.Sprintf("core pipeline vs plain loop, %s rows: M rows/s (median of %d)", runinfo.Short(rep.Results[0].Rows), rep.Reps),
		YLabel: "M rows/s",
		Series: []string{"plain loop", "pipeline (replay)", "pipeline (generate)"},
		Format: "%.1f",
		Notes: []string{
			"overhead = pipeline time / loop time over the same batches, same Select+Eval calls; " +
				"replay -> filter -> project -> discard, 3 edges",
			fmt.Sprintf("%s, %d CPU, %s, load %s; %s", rep.CPU, rep.NumCPU, rep.Go, rep.LoadStart, rep.Command),
		},
	}
	for _, r := range rep.Results {
		c.Groups = append(c.Groups, chart.Group{
			Label:  fmt.Sprintf("batch %s\nprocs %d\nx%.2f", runinfo.Short(int64(r.BatchRows)), r.Procs, r.OverheadRatio),
			Values: []float64{r.Loop.RowsPerSec / 1e6, r.Replay.RowsPerSec / 1e6, r.Generate.RowsPerSec / 1e6},
		})
	}
	w := max(1000, 190*len(c.Groups)+120)
	img := chart.NewCanvas(w, 520)
	c.Draw(img, image.Rect(0, 0, w, 520))
	return chart.WritePNG(path, img)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "overhead:", err)
	os.Exit(1)
}
