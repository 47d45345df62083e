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

// writeOutputs writes <out>/nvmeof.md and the chart at pngPath.
func writeOutputs(out, pngPath string, rep *Report) error {
	err := runinfo.WriteMarkdown(out, "nvmeof", "NVMe/TCP: zflow's initiator against zflow's target, with iperf3 and fio",
		"bench-nvmeof", "NVMe/TCP against iperf3 and fio", rep.Command, func(w io.Writer) { writeTable(w, rep) })
	if err != nil {
		return err
	}
	return writeChart(pngPath, rep)
}

func writeTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "%s, %d CPU, kernel %s, %s, %s, %s; namespaces of %d MiB, the file %s; %d repetitions of %s per measurement, interleaved; load %s → %s\n\n",
		rep.CPU, rep.NumCPU, rep.Kernel, rep.Go, rep.Fio, rep.Iperf, rep.Size>>20, rep.File, rep.Reps, rep.Runtime, rep.LoadStart, rep.LoadEnd)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	fmt.Fprintf(w, "\n## ours ÷ baseline (median of per-repetition ratios)\n\n| ours | baseline | by | **ratio** | target | per repetition |\n|---|---|---|---:|---|---|\n")
	for _, p := range rep.Pairs {
		fmt.Fprintf(w, "| %s | %s | %s | **%.2f** | %s | %s |\n", p.Ours, p.Baseline, p.By, p.Ratio, runinfo.TargetCell(p.Ratio, p.Target), runinfo.Floats(p.Ratios, "%.2f"))
	}
	fmt.Fprintf(w, "\n## every measurement (medians; CPU is both ends: for ours the whole process, target and initiator; for iperf3 sender + receiver)\n\n| measurement | IOPS | MB/s | CPU µs per I/O |\n|---|---:|---:|---:|\n")
	for _, m := range rep.Measures {
		fmt.Fprintf(w, "| %s | %.0f | %.1f | %.1f |\n", m.Name, m.MedIOPS, m.MedMBps, m.MedCPU)
	}
}

// writeChart draws one group per pattern and queue count, a bar per
// namespace kind: ours ÷ its baseline.
func writeChart(path string, rep *Report) error {
	series := []string{"RAM namespace", "file namespace"}
	c := &chart.Bars{
		Title:  fmt.Sprintf("NVMe/TCP over loopback, ours / baseline in the same repetition (median of %d)", rep.Reps),
		YLabel: "ratio ours / baseline",
		Format: "%.2f",
		Series: series,
		Notes: []string{
			"rnd 4K: random 4 KiB reads, IOPS / fio psync (pread) IOPS on the file, target >= 0.5 at qd32; seq 1M: bytes/s / iperf3 one stream, target >= 0.8",
			"qd: commands in flight in total, q: I/O queues (TCP connections); target and initiator in one process",
			fmt.Sprintf("%s, %d CPU, kernel %s, load %s; %s", rep.CPU, rep.NumCPU, rep.Kernel, rep.LoadStart, strings.TrimSpace(rep.Command)),
		},
	}
	byName := map[string]*Measure{}
	for _, m := range rep.Measures {
		byName[m.Name] = m
	}
	at := map[string]int{}
	for _, p := range rep.Pairs {
		m := byName[p.Ours]
		if m == nil || (m.Pattern == rand4K && !strings.HasPrefix(p.Baseline, "fio psync")) {
			continue
		}
		label := fmt.Sprintf("%s\nqd%d q%d", strings.NewReplacer("rand 4KiB read", "rnd 4K", "seq 1MiB ", "seq 1M ").Replace(m.Pattern), m.Depth, m.Queues)
		i, ok := at[label]
		if !ok {
			i = len(c.Groups)
			at[label] = i
			c.Groups = append(c.Groups, chart.Group{Label: label, Values: []float64{math.NaN(), math.NaN()}})
		}
		c.Groups[i].Values[map[string]int{"ram": 0, "file": 1}[m.NS]] = p.Ratio
	}
	w := max(1200, 120*len(c.Groups)+200)
	img := chart.NewCanvas(w, 560)
	c.Draw(img, image.Rect(0, 0, w, 560))
	return chart.WritePNG(path, img)
}
