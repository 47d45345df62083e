//go:build linux

// Command arena measures what the arena allocator (package buffers) buys a
// pipeline against Go's allocator: the core pipeline generate → filter →
// project → discard, where every batch is freshly allocated, on
// memory.NewGoAllocator and on plain, THP and hugetlb arenas (a new,
// prefaulted arena per run, as `zflow run` makes one), interleaved, several
// times. For each: wall time, rows/s and minor page faults (getrusage) per
// GB of batches made, and their ratios against the Go allocator of the same
// repetition. A second part times allocate + first touch + free of single
// buffers, 64 KiB to 64 MiB. It prints tables and writes
// <out>/arena.json and <out>/arena.png.
//
// As root it reserves the 2 MiB hugepages the hugetlb arena needs (and
// restores /proc/sys/vm/nr_hugepages); otherwise that arena falls back to
// THP and the table says so.
//
// It is Linux-only, as arenas are (and it counts minor faults with
// getrusage).
//
//	go run ./bench/cmd/arena [-rows 8388608] [-batch 65536] [-reps 7] [-out bench/results]
package main

import (
	"context"
	"flag"
	"fmt"
	"image"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/bench"
	"github.com/zflowdev/zflow/bench/internal/chart"
	"github.com/zflowdev/zflow/bench/internal/runinfo"
	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// Side is one allocator's figures over the repetitions.
type Side struct {
	Name        string    `json:"name"`
	Got         string    `json:"got"` // what the arena got (read back), or "go heap"
	MedianMs    float64   `json:"median_ms"`
	RowsPerSec  float64   `json:"rows_per_s"`
	FaultsPerGB float64   `json:"minor_faults_per_gb"` // median, per GB of batches the source made
	Speedup     float64   `json:"speedup_vs_go"`       // median of per-repetition go time ÷ this time
	FaultRatio  float64   `json:"fault_ratio_vs_go"`   // median of per-repetition go faults ÷ these faults
	RunsMs      []float64 `json:"runs_ms"`
	Faults      []float64 `json:"faults"`
}

// Micro is one buffer size of the allocate + touch + free part.
type Micro struct {
	Size       int64   `json:"size"`
	GoNs       float64 `json:"go_ns_per_op"`
	ArenaNs    float64 `json:"arena_ns_per_op"`
	GoFaults   float64 `json:"go_faults_per_op"`
	ArenaFault float64 `json:"arena_faults_per_op"`
	Arena      string  `json:"arena"`
}

// Report is arena.json.
type Report struct {
	runinfo.Machine
	Rows      int64   `json:"rows"`
	BatchRows int     `json:"batch_rows"`
	BytesMade int64   `json:"bytes_made"` // by the source, per run
	Reps      int     `json:"reps"`
	Sides     []Side  `json:"pipeline"`
	Micro     []Micro `json:"alloc_touch_free"`
}

type alloc struct {
	name string
	kind buffers.Kind
	heap bool
}

func main() {
	rows := flag.Int64("rows", 8<<20, "rows per run")
	batch := flag.Int("batch", 64<<10, "rows per batch")
	reps := flag.Int("reps", 7, "measured repetitions (after one warm-up)")
	out := flag.String("out", "bench/results", "folder for arena.json and arena.png ('' writes nothing)")
	flag.Parse()
	restore := reserveHugepages(1024) // 2 GiB of 2 MiB pages, if root
	defer restore()
	rep := Report{
		Machine: runinfo.Start("arena"), Rows: *rows, BatchRows: *batch, Reps: *reps,
	}
	allocs := []alloc{{name: "go", heap: true}, {name: "plain", kind: buffers.KindPlain},
		{name: "thp", kind: buffers.KindTHP}, {name: "hugetlb", kind: buffers.KindHugepage}}
	if err := pipeline(&rep, allocs); err != nil {
		fatal(err)
	}
	rep.Micro = micro()
	rep.LoadEnd = runinfo.LoadAvg()
	writeTables(os.Stdout, &rep)
	if err := runinfo.Save(*out, "arena", &rep, func(path string) error { return writeChart(path, &rep) }); err != nil {
		fatal(err)
	}
}

func minflt() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Minflt
}

func newArena(kind buffers.Kind) (*buffers.Allocator, error) {
	return buffers.New(buffers.ArenaConfig{Kind: kind, Node: buffers.NoNode, Prefault: true, Logger: slog.New(slog.DiscardHandler)})
}

func got(a *buffers.Allocator) string {
	r := a.Backing()
	if len(r.Fallbacks) > 0 {
		return "fell back: " + r.Fallbacks[0]
	}
	return r.Kind.String()
}

func pipeline(rep *Report, allocs []alloc) error {
	ctx := context.Background()
	p, err := bench.Pipeline(nil, rep.Rows, rep.BatchRows)
	if err != nil {
		return err
	}
	sides := make([]Side, len(allocs))
	speed := make([][]float64, len(allocs))
	faultRatio := make([][]float64, len(allocs))
	for r := -1; r < rep.Reps; r++ {
		var goMs, goFaults float64
		for i, al := range allocs {
			runtime.GC()
			f0, t0 := minflt(), time.Now()
			var mem memory.Allocator = memory.NewGoAllocator()
			var ar *buffers.Allocator
			if !al.heap {
				if ar, err = newArena(al.kind); err != nil {
					return err
				}
				mem = ar
			}
			sum, err := p.Run(ctx, engine.RunOptions{Alloc: mem})
			if err != nil {
				return fmt.Errorf("%s: %w", al.name, err)
			}
			side := &sides[i]
			side.Name, side.Got = al.name, "go heap"
			if ar != nil {
				side.Got = got(ar)
				if err := ar.Close(); err != nil {
					return err
				}
			}
			ms := float64(time.Since(t0)) / 1e6
			faults := float64(minflt() - f0)
			rep.BytesMade = sum.Op("trades").BytesOut
			if r < 0 {
				continue
			}
			if al.heap {
				goMs, goFaults = ms, faults
			}
			side.RunsMs = append(side.RunsMs, ms)
			side.Faults = append(side.Faults, faults)
			speed[i] = append(speed[i], goMs/ms)
			faultRatio[i] = append(faultRatio[i], goFaults/max(faults, 1))
		}
	}
	for i := range sides {
		s := &sides[i]
		s.MedianMs = runinfo.Median(s.RunsMs)
		s.RowsPerSec = float64(rep.Rows) / (s.MedianMs / 1e3)
		s.FaultsPerGB = runinfo.Median(s.Faults) / (float64(rep.BytesMade) / 1e9)
		s.Speedup = runinfo.Median(speed[i])
		s.FaultRatio = runinfo.Median(faultRatio[i])
	}
	rep.Sides = sides
	return nil
}

// micro times allocate + write one byte per 4 KiB + free, per size.
func micro() []Micro {
	var out []Micro
	for _, size := range []int64{64 << 10, 1 << 20, 8 << 20, 64 << 20} {
		n := int(max(8, min(2000, (256<<20)/size)))
		run := func(mem memory.Allocator) (float64, float64) {
			runtime.GC()
			f0, t0 := minflt(), time.Now()
			for range n {
				b := mem.Allocate(int(size))
				for off := 0; off < len(b); off += 4096 {
					b[off] = 1
				}
				mem.Free(b)
			}
			return float64(time.Since(t0).Nanoseconds()) / float64(n), float64(minflt()-f0) / float64(n)
		}
		m := Micro{Size: size}
		m.GoNs, m.GoFaults = run(memory.NewGoAllocator())
		kind := buffers.KindHugepage
		a, err := newArena(kind)
		if err != nil {
			fatal(err)
		}
		m.Arena = got(a)
		run(a) // the arena's first use of a large size maps it; then it is reused
		m.ArenaNs, m.ArenaFault = run(a)
		if err := a.Close(); err != nil {
			fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// reserveHugepages makes sure n 2 MiB pages are reserved (as root) and
// returns what restores the old value.
func reserveHugepages(n int) func() {
	const path = "/proc/sys/vm/nr_hugepages"
	b, err := os.ReadFile(path)
	if err != nil {
		return func() {}
	}
	old := strings.TrimSpace(string(b))
	if v, _ := strconv.Atoi(old); v >= n {
		return func() {}
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(n)), 0); err != nil {
		fmt.Fprintf(os.Stderr, "arena: cannot reserve hugepages (%v): the hugetlb arena will fall back\n", err)
		return func() {}
	}
	return func() { _ = os.WriteFile(path, []byte(old), 0) }
}

func writeTables(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "generate → filter → project → discard, %s rows in batches of %s (%s made per run), GOMAXPROCS=%d, median of %d interleaved repetitions; ratios against Go's allocator in the same repetition\n\n",
		runinfo.Short(rep.Rows), runinfo.Short(int64(rep.BatchRows)), engine.HumanBytes(rep.BytesMade), runtime.GOMAXPROCS(0), rep.Reps)
	fmt.Fprintln(w, "| allocator | got | time | rows/s | minor faults per GB | speed-up vs go | fewer faults vs go |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
	for _, s := range rep.Sides {
		fmt.Fprintf(w, "| %s | %s | %.0f ms | %.1f M | %.0f | ×%.2f | ×%.1f |\n", s.Name, s.Got, s.MedianMs, s.RowsPerSec/1e6, s.FaultsPerGB, s.Speedup, s.FaultRatio)
	}
	fmt.Fprintln(w, "\nallocate + touch every 4 KiB + free, one buffer at a time:")
	fmt.Fprintln(w, "| size | go ns/op | arena ns/op | go faults/op | arena faults/op | arena |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---|")
	for _, m := range rep.Micro {
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f | %.2f | %s |\n", engine.HumanBytes(m.Size), m.GoNs, m.ArenaNs, m.GoFaults, m.ArenaFault, m.Arena)
	}
	fmt.Fprintf(w, "\n%s, %d CPU, %s, load %s → %s\n", rep.CPU, rep.NumCPU, rep.Go, rep.LoadStart, rep.LoadEnd)
}

func writeChart(path string, rep *Report) error {
	img := chart.NewCanvas(1200, 1000)
	speed := &chart.Bars{
		Title:  fmt.Sprintf("generate -> filter -> project -> discard, %s rows: M rows/s (x = speed-up vs Go's allocator)", runinfo.Short(rep.Rows)),
		YLabel: "M rows/s",
		Series: []string{"M rows/s"},
		Format: "%.1f",
	}
	faults := &chart.Bars{
		Title:  "minor page faults per GB of batches made (log10)",
		YLabel: "log10 faults/GB",
		Series: []string{"log10(faults/GB + 1)"},
		Format: "%.2f",
		Notes: []string{
			"median of interleaved repetitions; a new prefaulted arena per run (as zflow run makes one)",
			fmt.Sprintf("%s, %d CPU, %s, load %s; %s", rep.CPU, rep.NumCPU, rep.Go, rep.LoadStart, rep.Command),
		},
	}
	for _, s := range rep.Sides {
		speed.Groups = append(speed.Groups, chart.Group{Label: fmt.Sprintf("%s\nx%.2f", s.Name, s.Speedup), Values: []float64{s.RowsPerSec / 1e6}})
		faults.Groups = append(faults.Groups, chart.Group{Label: fmt.Sprintf("%s\n%.0f/GB", s.Name, s.FaultsPerGB), Values: []float64{math.Log10(s.FaultsPerGB + 1)}})
	}
	speed.Draw(img, image.Rect(0, 0, 1200, 480))
	faults.Draw(img, image.Rect(0, 500, 1200, 1000))
	return chart.WritePNG(path, img)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "arena:", err)
	os.Exit(1)
}
