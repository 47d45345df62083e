//go:build linux

package main

import (
	"fmt"
	"image"
	"io"
	"math"
	"slices"

	"github.com/zflowdev/zflow/bench/internal/chart"
	"github.com/zflowdev/zflow/bench/internal/runinfo"
)

// Report is net.json.
type Report struct {
	runinfo.Machine
	Kernel   string   `json:"kernel"`
	Sizes    []int    `json:"message_sizes"`
	Seconds  float64  `json:"seconds_per_cell"`
	Reps     int      `json:"reps"`
	Networks []string `json:"networks"`
	Paths    []string `json:"paths"`
	Skipped  []string `json:"skipped,omitempty"`
	Cells    []Cell   `json:"cells"`
	Stream   Stream   `json:"stream"`
	Targets  []string `json:"targets"`
}

// Cell is one network × path × message size: medians over the
// repetitions. Latencies and the copied fraction exist for zflow's paths
// only (iperf3 reports neither); the copied fraction only where the path
// has completions (not write).
type Cell struct {
	Network          string    `json:"network"`
	Path             string    `json:"path"`
	Size             int       `json:"message_bytes"`
	GBps             float64   `json:"gb_per_s"`
	VsIperf          float64   `json:"ratio_vs_iperf3"` // median of per-repetition ratios
	SendP50Us        *float64  `json:"send_p50_us,omitempty"`
	SendP99Us        *float64  `json:"send_p99_us,omitempty"`
	ReleaseP50Us     *float64  `json:"release_p50_us,omitempty"`
	ReleaseP99Us     *float64  `json:"release_p99_us,omitempty"`
	SenderCPUPerGB   float64   `json:"sender_cpu_s_per_gb"`
	ReceiverCPUPerGB float64   `json:"receiver_cpu_s_per_gb"`
	CopiedFraction   *float64  `json:"copied_fraction,omitempty"`
	RunsGBps         []float64 `json:"runs_gb_per_s"`
}

// Stream is the Arrow stream end to end.
type Stream struct {
	Rows         int64        `json:"rows"`
	BodyBytes    int64        `json:"arrow_bytes"`
	Batches      int64        `json:"batches"`
	MeanMessage  int          `json:"mean_batch_bytes"`
	IperfMessage int          `json:"iperf3_message_bytes"`
	Cells        []StreamCell `json:"cells"`
}

// StreamCell is the stream on one network, medians over the repetitions.
type StreamCell struct {
	Network          string    `json:"network"`
	GBps             float64   `json:"arrow_gb_per_s"`
	IperfGBps        float64   `json:"iperf3_gb_per_s"`
	VsIperf          float64   `json:"ratio_vs_iperf3"`
	FileWriteGBps    float64   `json:"file_writev_gb_per_s"` // the file's bytes by writev, mean batch size messages
	FileWriteVsIperf float64   `json:"file_writev_ratio_vs_iperf3"`
	VsFileWrite      float64   `json:"ratio_vs_file_writev"`
	SenderCPUPerGB   float64   `json:"sender_cpu_s_per_gb"`
	ReceiverCPUPerGB float64   `json:"receiver_cpu_s_per_gb"`
	RunsGBps         []float64 `json:"runs_gb_per_s"`
}

type cellKey struct {
	net, path string
	size      int
}

// sample is one run of one cell.
type sample struct {
	gbps, ratio                      float64
	latency                          bool
	sendP50, sendP99, relP50, relP99 float64
	senderCPU, receiverCPU           float64
	hasCopied                        bool
	copied                           float64
}

type sampleAt struct {
	key cellKey
	s   sample
}

type streamSample struct {
	gbps, iperf, fileWrite, senderCPU, receiverCPU float64
}

// accumulator gathers the samples of every repetition, in first-seen
// order.
type accumulator struct {
	order   []cellKey
	samples map[cellKey][]sample
	nets    []string
	streams map[string][]streamSample
}

func newAccumulator() *accumulator {
	return &accumulator{samples: map[cellKey][]sample{}, streams: map[string][]streamSample{}}
}

// addGroup adds the paths of one network and size measured in one
// repetition, each with its ratio to that repetition's iperf3.
func (a *accumulator) addGroup(g []sampleAt) {
	base := math.NaN()
	for _, x := range g {
		if x.key.path == baseline {
			base = x.s.gbps
		}
	}
	for _, x := range g {
		x.s.ratio = x.s.gbps / base
		if _, ok := a.samples[x.key]; !ok {
			a.order = append(a.order, x.key)
		}
		a.samples[x.key] = append(a.samples[x.key], x.s)
	}
}

func (a *accumulator) addStream(net string, s streamSample) {
	if _, ok := a.streams[net]; !ok {
		a.nets = append(a.nets, net)
	}
	a.streams[net] = append(a.streams[net], s)
}

// median of f over ss.
func median[T any](ss []T, f func(T) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	return runinfo.Median(v)
}

func ptr(v float64) *float64 { return &v }

// fill puts the medians into rep.
func (a *accumulator) fill(rep *Report) {
	for _, k := range a.order {
		ss := a.samples[k]
		c := Cell{Network: k.net, Path: k.path, Size: k.size,
			GBps:             median(ss, func(s sample) float64 { return s.gbps }),
			VsIperf:          median(ss, func(s sample) float64 { return s.ratio }),
			SenderCPUPerGB:   median(ss, func(s sample) float64 { return s.senderCPU }),
			ReceiverCPUPerGB: median(ss, func(s sample) float64 { return s.receiverCPU }),
		}
		for _, s := range ss {
			c.RunsGBps = append(c.RunsGBps, s.gbps)
		}
		if ss[0].latency {
			c.SendP50Us = ptr(median(ss, func(s sample) float64 { return s.sendP50 }))
			c.SendP99Us = ptr(median(ss, func(s sample) float64 { return s.sendP99 }))
			c.ReleaseP50Us = ptr(median(ss, func(s sample) float64 { return s.relP50 }))
			c.ReleaseP99Us = ptr(median(ss, func(s sample) float64 { return s.relP99 }))
		}
		if ss[0].hasCopied {
			c.CopiedFraction = ptr(median(ss, func(s sample) float64 { return s.copied }))
		}
		rep.Cells = append(rep.Cells, c)
	}
	for _, net := range a.nets {
		ss := a.streams[net]
		c := StreamCell{Network: net,
			GBps:             median(ss, func(s streamSample) float64 { return s.gbps }),
			IperfGBps:        median(ss, func(s streamSample) float64 { return s.iperf }),
			VsIperf:          median(ss, func(s streamSample) float64 { return s.gbps / s.iperf }),
			FileWriteGBps:    median(ss, func(s streamSample) float64 { return s.fileWrite }),
			FileWriteVsIperf: median(ss, func(s streamSample) float64 { return s.fileWrite / s.iperf }),
			VsFileWrite:      median(ss, func(s streamSample) float64 { return s.gbps / s.fileWrite }),
			SenderCPUPerGB:   median(ss, func(s streamSample) float64 { return s.senderCPU }),
			ReceiverCPUPerGB: median(ss, func(s streamSample) float64 { return s.receiverCPU }),
		}
		for _, s := range ss {
			c.RunsGBps = append(c.RunsGBps, s.gbps)
		}
		rep.Stream.Cells = append(rep.Stream.Cells, c)
	}
}

func opt(v *float64, format string) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf(format, *v)
}

// writeMarkdown writes the tables.
func writeMarkdown(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "# Send paths against iperf3\n\n`%s` — %s, Linux %s, %s, %d CPUs; load average %s → %s. ", rep.Command,
		rep.Time.Format("2006-01-02 15:04 UTC"), rep.Kernel, rep.CPU, rep.NumCPU, rep.LoadStart, rep.LoadEnd)
	fmt.Fprintf(w, "One message per send, %.0f s per cell, medians of %d interleaved repetitions; × iperf3 is the median of each repetition's ratio to plain iperf3 at the same size on the same network. Latencies in µs; CPU in seconds per GB (10⁹ bytes) moved; copied: the fraction of zero-copy completions the kernel flagged as copied.\n\n", rep.Seconds, rep.Reps)
	if slices.Max(rep.Sizes) > iperfMaxBlock {
		fmt.Fprintf(w, "iperf3 sends at most %s per call (-l): larger sizes are compared with iperf3 at %s.\n\n", runinfo.Short(iperfMaxBlock), runinfo.Short(iperfMaxBlock))
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "- skipped: %s\n", s)
	}
	for _, net := range rep.Networks {
		fmt.Fprintf(w, "\n## %s\n\n", net)
		fmt.Fprintln(w, "| size | path | GB/s | × iperf3 | send p50 | send p99 | release p50 | release p99 | sender CPU s/GB | receiver CPU s/GB | copied |")
		fmt.Fprintln(w, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, c := range rep.Cells {
			if c.Network != net {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %.2f | %.2f | %s | %s | %s | %s | %.2f | %.2f | %s |\n",
				runinfo.Short(int64(c.Size)), c.Path, c.GBps, c.VsIperf,
				opt(c.SendP50Us, "%.1f"), opt(c.SendP99Us, "%.1f"), opt(c.ReleaseP50Us, "%.1f"), opt(c.ReleaseP99Us, "%.1f"),
				c.SenderCPUPerGB, c.ReceiverCPUPerGB, opt(c.CopiedFraction, "%.2f"))
		}
	}
	if len(rep.Stream.Cells) > 0 {
		st := rep.Stream
		fmt.Fprintf(w, "\n## The Arrow stream end to end\n\n`zflow run` arrow file (tmpfs, mapped) → tcp_out, and `zflow run` tcp_in → discard, two processes at their defaults (protocol zflow, send auto, validate full): %d rows, %s of Arrow data in %d batches; GB/s of Arrow data over the sending run's elapsed time; CPU of each whole process per GB; iperf3 with -l %d (the mean batch, %d bytes, up to iperf3's maximum) in the same repetition. File writev: the same file's bytes, mapped and populated as the arrow source maps them, sent by netzc's copy path (writev) in messages of the mean batch size to the benchmark's receiver — the cost of moving those cold bytes without Arrow, the engine or the stream protocol (iperf3 sends one cache-hot buffer).\n\n",
			st.Rows, fmt.Sprintf("%.0f MB", float64(st.BodyBytes)/1e6), st.Batches, st.IperfMessage, st.MeanMessage)
		fmt.Fprintln(w, "| network | Arrow GB/s | iperf3 GB/s | **× iperf3** | file writev GB/s | file writev × iperf3 | stream × file writev | sender CPU s/GB | receiver CPU s/GB |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, c := range st.Cells {
			fmt.Fprintf(w, "| %s | %.2f | %.2f | **%.2f** | %.2f | %.2f | %.2f | %.2f | %.2f |\n", c.Network, c.GBps, c.IperfGBps, c.VsIperf,
				c.FileWriteGBps, c.FileWriteVsIperf, c.VsFileWrite, c.SenderCPUPerGB, c.ReceiverCPUPerGB)
		}
	}
	fmt.Fprint(w, "\n## Targets\n\n")
	for _, t := range rep.Targets {
		fmt.Fprintf(w, "- %s\n", t)
	}
}

// writeChart draws GB/s per size and path, one panel per network.
func writeChart(path string, rep *Report) error {
	const w, h = 1500, 560
	img := chart.NewCanvas(w, h*max(len(rep.Networks), 1))
	for i, net := range rep.Networks {
		b := chart.Bars{Title: "send paths on " + net + ": GB/s, one message per send (median)",
			YLabel: "GB/s", Series: rep.Paths, Format: "%.2f"}
		for _, size := range rep.Sizes {
			g := chart.Group{Label: runinfo.Short(int64(size))}
			for _, p := range rep.Paths {
				v := math.NaN() // a skipped path draws no bar
				if c, ok := rep.cell(net, p, size); ok {
					v = c.GBps
				}
				g.Values = append(g.Values, v)
			}
			b.Groups = append(b.Groups, g)
		}
		for _, s := range rep.Stream.Cells {
			if s.Network == net {
				b.Notes = append(b.Notes, fmt.Sprintf("Arrow stream end to end (tcp_out -> tcp_in, discard): %.2f GB/s = %.2fx iperf3 at %s", s.GBps, s.VsIperf, runinfo.Short(int64(rep.Stream.IperfMessage))))
			}
		}
		if slices.Max(rep.Sizes) > iperfMaxBlock {
			b.Notes = append(b.Notes, fmt.Sprintf("iperf3 takes at most -l %s: above it, its bars are iperf3 at %s", runinfo.Short(iperfMaxBlock), runinfo.Short(iperfMaxBlock)))
		}
		b.Notes = append(b.Notes, fmt.Sprintf("%s, Linux %s, load %s -> %s; %s", rep.Time.Format("2006-01-02"), rep.Kernel, rep.LoadStart, rep.LoadEnd, rep.Command))
		b.Draw(img, image.Rect(0, i*h, w, (i+1)*h))
	}
	return chart.WritePNG(path, img)
}
