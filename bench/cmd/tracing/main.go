// Command tracing measures what OpenTelemetry costs a run: the core
// pipeline (replay → filter → project → discard, over the same
// pre-generated batches) with telemetry off, then with the OTel SDK on in
// several ways, interleaved in one run, several times. Each variant's
// ratio is its time ÷ the "off" time of the same repetition, then the
// median. It prints a table and writes <out>/tracing.json and
// <out>/tracing.png.
//
// Run it from the repository root:
//
//	go run ./bench/cmd/tracing [-rows 16777216] [-batches 8192,65536] [-reps 25] [-out bench/results]
package main

import (
	"context"
	"flag"
	"fmt"
	"image"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/zflowdev/zflow/bench"
	"github.com/zflowdev/zflow/bench/internal/chart"
	"github.com/zflowdev/zflow/bench/internal/runinfo"
	"github.com/zflowdev/zflow/engine"
)

// Variant is one way of running with telemetry.
type Variant struct {
	Name string `json:"name"`
	Desc string `json:"description"`
	// setup returns the run's telemetry and a function that shuts it down.
	setup func() (engine.Telemetry, func())
}

func variants() []Variant {
	// Spans go through the SDK's batch span processor into an exporter that
	// drops them: the cost measured is the engine's and the SDK's, not a
	// network's.
	traced := func(sampler sdktrace.Sampler, batches float64, metrics bool) func() (engine.Telemetry, func()) {
		return func() (engine.Telemetry, func()) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler),
				sdktrace.WithBatcher(tracetest.NewNoopExporter(), sdktrace.WithMaxQueueSize(1<<16)))
			t := engine.Telemetry{TracerProvider: tp, BatchSampling: batches}
			var mp *sdkmetric.MeterProvider
			if metrics {
				mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				t.MeterProvider = mp
			}
			return t, func() {
				_ = tp.Shutdown(context.Background())
				if mp != nil {
					_ = mp.Shutdown(context.Background())
				}
			}
		}
	}
	return []Variant{
		{"off", "no telemetry (the baseline)", func() (engine.Telemetry, func()) { return engine.Telemetry{}, func() {} }},
		{"sampling 0", "tracer on, run not sampled (trace.sampling: 0): non-recording spans", traced(sdktrace.NeverSample(), 0, false)},
		{"sampling 1", "tracer on, every run sampled: a span per run and per operator instance", traced(sdktrace.AlwaysSample(), 0, false)},
		{"spans+metrics", "sampling 1 and the metrics (counters pumped, edge latency histogram per batch)", traced(sdktrace.AlwaysSample(), 0, true)},
		{"batches 1", "sampling 1 and trace.batches: 1 (a span per batch at every operator)", traced(sdktrace.AlwaysSample(), 1, false)},
	}
}

// Cell is one batch size's figures.
type Cell struct {
	BatchRows int                  `json:"batch_rows"`
	Batches   int                  `json:"batches"`
	MedianMs  map[string]float64   `json:"median_ms"`
	Ratio     map[string]float64   `json:"ratio_vs_off"` // median of per-repetition ratios
	RatioQ1   map[string]float64   `json:"ratio_q1"`     // their first and third quartiles: the noise
	RatioQ3   map[string]float64   `json:"ratio_q3"`
	RunsMs    map[string][]float64 `json:"runs_ms"`
}

// Report is tracing.json.
type Report struct {
	runinfo.Machine
	Rows     int64     `json:"rows"`
	Reps     int       `json:"reps"`
	Variants []Variant `json:"variants"`
	Cells    []Cell    `json:"cells"`
}

func main() {
	rows := flag.Int64("rows", 16<<20, "rows per run")
	reps := flag.Int("reps", 25, "measured repetitions of each variant (after one warm-up)")
	batchList := flag.String("batches", "8192,65536", "batch sizes, comma-separated")
	out := flag.String("out", "bench/results", "folder for tracing.json and tracing.png ('' writes nothing)")
	only := flag.String("variants", "", "comma-separated variant names to run (off is always run); empty: all")
	replot := flag.Bool("replot", false, "measure nothing: redraw <out>/tracing.png from <out>/tracing.json")
	flag.Parse()
	if *replot {
		var rep Report
		if err := runinfo.Replot(*out, "tracing", &rep, func(path string) error { return writeChart(path, &rep) }); err != nil {
			fatal(err)
		}
		return
	}
	batches, err := runinfo.Ints(*batchList)
	if err != nil {
		fatal(err)
	}
	rep := Report{
		Machine: runinfo.Start("tracing"), Rows: *rows, Reps: *reps, Variants: variants(),
	}
	if *only != "" {
		keep := rep.Variants[:1]
		for _, v := range rep.Variants[1:] {
			if slices.Contains(strings.Split(*only, ","), v.Name) {
				keep = append(keep, v)
			}
		}
		rep.Variants = keep
	}
	for _, b := range batches {
		c, err := measure(context.Background(), *rows, b, *reps, rep.Variants)
		if err != nil {
			fatal(err)
		}
		rep.Cells = append(rep.Cells, c)
	}
	rep.LoadEnd = runinfo.LoadAvg()
	writeTable(os.Stdout, &rep)
	if err := runinfo.Save(*out, "tracing", &rep, func(path string) error { return writeChart(path, &rep) }); err != nil {
		fatal(err)
	}
}

func measure(ctx context.Context, rows int64, batch, reps int, vs []Variant) (Cell, error) {
	mem := memory.NewGoAllocator()
	d, err := bench.Generate(ctx, mem, rows, batch)
	if err != nil {
		return Cell{}, err
	}
	defer d.Release()
	p, err := bench.Pipeline(d, rows, batch)
	if err != nil {
		return Cell{}, err
	}
	c := Cell{BatchRows: batch, Batches: len(d.Batches), MedianMs: map[string]float64{}, Ratio: map[string]float64{},
		RatioQ1: map[string]float64{}, RatioQ3: map[string]float64{}, RunsMs: map[string][]float64{}}
	ratios := map[string][]float64{}
	order := rand.New(rand.NewPCG(1, uint64(batch)))
	for rep := -1; rep < reps; rep++ { // rep -1 warms up
		// A fresh random order in each repetition (fixed seed: the same
		// orders every run), so no variant always runs first or after the
		// same neighbour.
		times := map[string]float64{}
		for _, j := range order.Perm(len(vs)) {
			v := vs[j]
			tel, shutdown := v.setup()
			runtime.GC()
			t0 := time.Now()
			_, err := p.Run(ctx, engine.RunOptions{Alloc: mem, Telemetry: tel})
			el := float64(time.Since(t0)) / 1e6
			shutdown()
			if err != nil {
				return c, fmt.Errorf("%s: %w", v.Name, err)
			}
			times[v.Name] = el
		}
		if rep < 0 {
			continue
		}
		for _, v := range vs {
			c.RunsMs[v.Name] = append(c.RunsMs[v.Name], times[v.Name])
			ratios[v.Name] = append(ratios[v.Name], times[v.Name]/times["off"])
		}
	}
	for _, v := range vs {
		c.MedianMs[v.Name] = runinfo.Median(c.RunsMs[v.Name])
		c.Ratio[v.Name] = runinfo.Median(ratios[v.Name])
		c.RatioQ1[v.Name], c.RatioQ3[v.Name] = quartiles(ratios[v.Name])
	}
	fmt.Fprintf(os.Stderr, "batch=%d: %v\n", batch, c.Ratio)
	return c, nil
}

func writeTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "core pipeline, %s rows, GOMAXPROCS=%d, median of %d repetitions (variants in a random order in each); ratio = variant ÷ off in the same repetition, median and interquartile range\n\n",
		runinfo.Short(rep.Rows), runtime.GOMAXPROCS(0), rep.Reps)
	fmt.Fprintf(w, "| variant | %s |\n|---|%s\n", strings.Join(cellHeads(rep), " | "), strings.Repeat("---|", len(rep.Cells)))
	for _, v := range rep.Variants {
		var cols []string
		for _, c := range rep.Cells {
			cols = append(cols, fmt.Sprintf("%.1f ms (×%.3f, IQR %.3f–%.3f)", c.MedianMs[v.Name], c.Ratio[v.Name], c.RatioQ1[v.Name], c.RatioQ3[v.Name]))
		}
		fmt.Fprintf(w, "| %s | %s |\n", v.Name, strings.Join(cols, " | "))
	}
	fmt.Fprintf(w, "\n%s, %d CPU, %s, load %s → %s\n", rep.CPU, rep.NumCPU, rep.Go, rep.LoadStart, rep.LoadEnd)
}

// quartiles returns the first and third quartiles of v.
func quartiles(v []float64) (float64, float64) {
	if len(v) == 0 {
		return 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/4], s[(3*len(s))/4]
}

func cellHeads(rep *Report) []string {
	var h []string
	for _, c := range rep.Cells {
		h = append(h, fmt.Sprintf("batch %s (%d batches)", runinfo.Short(int64(c.BatchRows)), c.Batches))
	}
	return h
}

func writeChart(path string, rep *Report) error {
	c := &chart.Bars{
		Title:  fmt.Sprintf("telemetry cost on the core pipeline, %s rows: time / time with telemetry off (median of %d, IQR in tracing.md)", runinfo.Short(rep.Rows), rep.Reps),
		YLabel: "ratio vs off",
		Format: "%.3f",
		Notes: []string{
			"sampling 0: run not sampled; sampling 1: span per run + per operator instance; +metrics: counters and edge latency; batches 1: a span per batch per operator",
			fmt.Sprintf("%s, %d CPU, %s, load %s; %s", rep.CPU, rep.NumCPU, rep.Go, rep.LoadStart, rep.Command),
		},
	}
	for _, v := range rep.Variants {
		c.Series = append(c.Series, v.Name)
	}
	for _, cell := range rep.Cells {
		g := chart.Group{Label: fmt.Sprintf("batch %s\n%d batches", runinfo.Short(int64(cell.BatchRows)), cell.Batches)}
		for _, v := range rep.Variants {
			g.Values = append(g.Values, cell.Ratio[v.Name])
		}
		c.Groups = append(c.Groups, g)
	}
	w := 1100
	img := chart.NewCanvas(w, 520)
	c.Draw(img, image.Rect(0, 0, w, 520))
	return chart.WritePNG(path, img)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "tracing:", err)
	os.Exit(1)
}
