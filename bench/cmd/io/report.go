//go:build linux

package main

import (
	"fmt"
	"image"
	"io"
	"math"
	"strings"

	"github.com/zflowdev/zflow/bench/internal/chart"
	"github.com/zflowdev/zflow/bench/internal/runinfo"
)

// writeOutputs writes <out>/io.md and the chart at pngPath.
func writeOutputs(out, pngPath string, rep *Report) error {
	err := runinfo.WriteMarkdown(out, "io", "zflow file reads against fio", "bench-io", "zflow's file reads against fio",
		rep.Command, func(w io.Writer) { writeTable(w, rep) })
	if err != nil {
		return err
	}
	return writeChart(pngPath, rep)
}

func writeTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "%s, %d CPU, kernel %s, %s, %s; %d repetitions of %s per measurement, interleaved; load %s → %s\n\n",
		rep.CPU, rep.NumCPU, rep.Kernel, rep.Go, rep.Fio, rep.Reps, rep.Runtime, rep.LoadStart, rep.LoadEnd)
	for _, f := range rep.Files {
		fmt.Fprintf(w, "- %s: %s, %s, %d rows (an Arrow IPC file written by zflow)\n", f.Place, f.Path, human(f.Bytes), f.Rows)
	}
	for _, p := range rep.Places {
		how := "buffered"
		switch {
		case p.Direct:
			how = "O_DIRECT on both sides"
		case p.Drop:
			how = "buffered, page cache dropped before each measurement, the file read once by each side"
		}
		fmt.Fprintf(w, "- %s: %s\n", p.Name, how)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	fmt.Fprintf(w, "\n## zflow backend ÷ fio engine (bytes/s, median of per-repetition ratios)\n\n")
	fmt.Fprintf(w, "| place | pattern | zflow | fio | **ratio** | target | per repetition |\n|---|---|---|---|---:|---:|---|\n")
	for _, p := range rep.Pairs {
		fmt.Fprintf(w, "| %s | %s | %s | %s | **%.2f** | %s | %s |\n", p.Place, p.Pattern, p.ZFlow, p.Fio, p.Ratio, runinfo.TargetCell(p.Ratio, p.Target), runinfo.Floats(p.Ratios, "%.2f"))
	}
	if len(rep.Arrow) > 0 {
		fmt.Fprintf(w, "\n## arrow source → discard (`zflow run`) ÷ fio's fastest sequential 1 MiB read of the same file, same repetition\n\n")
		fmt.Fprintf(w, "| run | backend (run summary) | MB/s (run) | **ratio** | ratio, whole process | target | fio engine compared |\n|---|---|---:|---:|---:|---:|---|\n")
		for _, a := range rep.Arrow {
			fmt.Fprintf(w, "| %s | %s | %.0f | **%.2f** | %.2f | %s | %s |\n", a.Name, a.Backend, a.MedMBps, a.Ratio, a.WallRatio, runinfo.TargetCell(a.Ratio, a.Target), strings.Join(uniq(a.Baseline), ", "))
		}
	}
	fmt.Fprintf(w, "\n## every measurement (medians)\n\n| place | pattern | engine | MB/s | IOPS | CPU %% | syscalls per 1000 requests |\n|---|---|---|---:|---:|---:|---:|\n")
	for _, r := range rep.Rows {
		calls := ""
		if r.CallsPerK > 0 {
			calls = fmt.Sprint(r.CallsPerK)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.1f | %.0f | %.0f | %s |\n", r.Place, r.Pattern, r.Engine, r.MedMBps, r.MedIOPS, r.MedCPU, calls)
	}
}

func uniq(v []string) []string {
	var out []string
	for _, s := range v {
		found := false
		for _, o := range out {
			found = found || o == s
		}
		if !found {
			out = append(out, s)
		}
	}
	return out
}

func writeChart(path string, rep *Report) error {
	series := []string{"posix / fio psync", "uring / fio io_uring", "mmap / fio mmap", "arrow source / fastest fio seq 1MiB"}
	c := &chart.Bars{
		Title:  fmt.Sprintf("zflow / fio, same file, same repetition (median of %d)", rep.Reps),
		YLabel: "ratio zflow / fio",
		Format: "%.2f",
		Series: series,
		Notes: []string{
			"targets: backends >= 0.9 of the matching fio engine; arrow source >= 0.8 of fio's fastest seq 1MiB read (io.md)",
			"tmpfs: buffered; disk: O_DIRECT both sides; disk-buf: buffered, page cache dropped, file read once",
			fmt.Sprintf("%s, %d CPU, kernel %s, %s, load %s; %s", rep.CPU, rep.NumCPU, rep.Kernel, rep.Fio, rep.LoadStart, strings.TrimSpace(rep.Command)),
		},
	}
	idx := map[string]int{"zflow:posix": 0, "zflow:uring": 1, "zflow:mmap": 2}
	none := func() []float64 { // NaN: no bar
		v := make([]float64, len(series))
		for i := range v {
			v[i] = math.NaN()
		}
		return v
	}
	short := strings.NewReplacer("disk-buffered", "disk-buf", "seq ", "seq", "rand ", "rnd", "KiB", "K", "MiB", "M", " qd", "/qd")
	var groups []chart.Group
	at := map[string]int{}
	for _, p := range rep.Pairs {
		k := short.Replace(p.Place + "\n" + p.Pattern)
		i, ok := at[k]
		if !ok {
			i = len(groups)
			at[k] = i
			groups = append(groups, chart.Group{Label: k, Values: none()})
		}
		groups[i].Values[idx[p.ZFlow]] = p.Ratio
	}
	for _, a := range rep.Arrow {
		v := none()
		v[3] = a.Ratio
		io := a.IO
		if a.Direct {
			io += " direct"
		}
		label := "arrow\n" + io + "\n" + short.Replace(a.Place)
		groups = append(groups, chart.Group{Label: label, Values: v})
	}
	c.Groups = groups
	w := max(1200, 140*len(groups)+200)
	img := chart.NewCanvas(w, 560)
	c.Draw(img, image.Rect(0, 0, w, 560))
	return chart.WritePNG(path, img)
}
