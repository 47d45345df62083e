//go:build linux

// Command rdma measures zflow's RDMA stream (io/rdma: rdma_out → rdma_in)
// against zflow's TCP Arrow stream (io/stream: tcp_out → tcp_in) and, on
// real verbs, against perftest's ib_write_bw on the same device, in one
// run, for batches of 64 KiB to 16 MiB:
//
//   - throughput: one batch of an int64 column of the size, sent again and
//     again for -duration by a Sender and taken by a Receiver in the same
//     process (each batch released as it arrives), bytes ÷ elapsed;
//   - latency per batch: from the Sender's Write call to the Receiver
//     handing the batch out, p50 and p99 over every batch of the
//     measurement.
//
// On the host (-place host) the RDMA path is the emulated provider, both
// with the region mapped (one host) and over the queue pair's TCP
// connection; in the QEMU guest (-place guest, a binary built with cgo and
// -tags rdma_verbs, run by `make bench-rdma` through interop/guest/run.sh)
// it is real verbs on Soft-RoCE, and ib_write_bw runs on the same device.
// Each repetition runs every path for every size; ratios are taken within
// a repetition, then the median.
//
// Output: <out>/rdma_<place>.json, .md and .png. In the guest, -json -
// prints the report between "ZG: BENCH-JSON-BEGIN" and "ZG: BENCH-JSON-END"
// lines for run.sh to take back; -render FILE draws a report made
// elsewhere.
//
//	go run ./bench/cmd/rdma [-reps 3] [-duration 2s] [-out bench/results]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/bench/internal/chart"
	"github.com/zflowdev/zflow/bench/internal/runinfo"
	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/io/rdma"
	"github.com/zflowdev/zflow/io/stream"
)

// Point is one path at one batch size: medians over the repetitions.
type Point struct {
	Path    string             `json:"path"`
	Bytes   int64              `json:"batch_bytes"`
	MBps    float64            `json:"mb_per_s"`
	P50us   float64            `json:"p50_us,omitempty"`
	P99us   float64            `json:"p99_us,omitempty"`
	Batches int                `json:"batches,omitempty"` // in the last repetition
	Ratios  map[string]float64 `json:"ratio_vs,omitempty"`
}

// Report is the whole run.
type Report struct {
	runinfo.Machine
	Place    string  `json:"place"`
	Device   string  `json:"device,omitempty"`
	Reps     int     `json:"reps"`
	Duration string  `json:"duration"`
	Points   []Point `json:"points"`
}

func main() {
	place := flag.String("place", "host", "host (the emulated provider) or guest (real verbs on -device)")
	device := flag.String("device", "rxe0", "guest: the verbs device")
	addr := flag.String("addr", "127.0.0.1", "the address both ends listen and connect on")
	reps := flag.Int("reps", 3, "repetitions")
	dur := flag.Duration("duration", 2*time.Second, "how long each path sends at each size")
	sizes := flag.String("sizes", "64KiB,256KiB,1MiB,4MiB,16MiB", "batch sizes")
	out := flag.String("out", "bench/results", "directory for rdma_<place>.json, .md, .png")
	jsonOut := flag.String("json", "", "- prints the report between ZG: BENCH-JSON markers instead of writing files")
	render := flag.String("render", "", "draw the .md and .png of a report in this JSON file (into -out)")
	only := flag.String("paths", "", "measure only these paths (comma-separated; default every path of the place)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measurements to this file (with -json -, printed base64 between ZG: PROF markers too)")
	flag.Parse()
	if *render != "" {
		var rep Report
		b, err := os.ReadFile(*render)
		check(err)
		check(json.Unmarshal(b, &rep))
		check(save(*out, &rep))
		return
	}
	rep := &Report{Machine: runinfo.Start("rdma"), Place: *place, Reps: *reps, Duration: dur.String()}
	var szs []int64
	for _, s := range strings.Split(*sizes, ",") {
		n, err := parseSize(s)
		check(err)
		szs = append(szs, n)
	}
	paths := []string{"rdma", "rdma_tcp", "stream"}
	if *place == "guest" {
		rep.Device = *device
		paths = []string{"rdma", "stream", "ib_write_bw"}
	}
	if *only != "" {
		want := strings.Split(*only, ",")
		for i, p := range want {
			if !slices.Contains(paths, p) {
				check(fmt.Errorf("-paths: %q is not a path of -place %s (%s)", p, *place, strings.Join(paths, ", ")))
			}
			if slices.Contains(want[:i], p) {
				check(fmt.Errorf("-paths: %q twice", p))
			}
		}
		paths = want
	}
	if *cpuProfile != "" {
		stop, err := startProfile(*cpuProfile, *jsonOut == "-")
		check(err)
		defer stop()
	}
	arena, err := buffers.New(buffers.ArenaConfig{Kind: buffers.KindPlain, ExtentSize: 64 << 20, QuietFallback: true})
	check(err)
	defer arena.Close()
	mem := arena.For("bench")
	runs := map[string][][]result{} // path → size index → repetitions
	for r := 0; r < *reps; r++ {
		for i, size := range szs {
			for _, p := range paths {
				var res result
				var err error
				switch p {
				case "rdma":
					dev := ""
					if *place == "guest" {
						dev = *device
					}
					res, err = runRDMA(mem, *addr, size, *dur, dev, false)
				case "rdma_tcp":
					res, err = runRDMA(mem, *addr, size, *dur, "", true)
				case "stream":
					res, err = runStream(mem, *addr, size, *dur)
				case "ib_write_bw":
					// perftest calibrates its cycle counter, which an
					// emulated CPU can make it fail ("Correlation
					// coefficient r^2 < 0.9", 0 MB/s): try again, and
					// count a size it never measures as missing.
					for try := 0; try < 3; try++ {
						if res, err = runIBWriteBW(*device, size, *dur); err == nil {
							break
						}
						fmt.Fprintln(os.Stderr, "rdma bench:", err)
					}
					if err != nil {
						res, err = result{}, nil
					}
				}
				check(err)
				if runs[p] == nil {
					runs[p] = make([][]result, len(szs))
				}
				runs[p][i] = append(runs[p][i], res)
				busy := "—"
				if res.wall > 0 {
					busy = fmt.Sprintf("%.0f%%", 100*res.cpu.Seconds()/res.wall.Seconds())
				}
				fmt.Fprintf(os.Stderr, "rep %d %s %s: %.1f MB/s p50 %.0f µs p99 %.0f µs (%d batches, %.2f s of CPU, %s of the wall)\n",
					r+1, runinfo.Short(size), p, res.mbps, res.p50, res.p99, res.batches, res.cpu.Seconds(), busy)
			}
		}
	}
	ref := "stream"
	if *place == "guest" {
		ref = "ib_write_bw"
	}
	for i, size := range szs {
		for _, p := range paths {
			rs := runs[p][i]
			pt := Point{Path: p, Bytes: size, Batches: rs[len(rs)-1].batches, Ratios: map[string]float64{}}
			var mb, p50, p99 []float64
			for _, r := range rs {
				mb, p50, p99 = append(mb, r.mbps), append(p50, r.p50), append(p99, r.p99)
			}
			pt.MBps, pt.P50us, pt.P99us = runinfo.Median(mb), runinfo.Median(p50), runinfo.Median(p99)
			for _, q := range []string{ref, "stream"} {
				if q == p || runs[q] == nil { // -paths left q out
					continue
				}
				var ratios []float64
				for k, r := range rs {
					if base := runs[q][i][k].mbps; base > 0 {
						ratios = append(ratios, r.mbps/base)
					}
				}
				if len(ratios) == 0 {
					continue
				}
				pt.Ratios[q] = runinfo.Median(ratios)
			}
			rep.Points = append(rep.Points, pt)
		}
	}
	rep.LoadEnd = runinfo.LoadAvg()
	if *jsonOut == "-" {
		b, err := json.Marshal(rep)
		check(err)
		fmt.Printf("ZG: BENCH-JSON-BEGIN\n%s\nZG: BENCH-JSON-END\n", b)
		return
	}
	check(save(*out, rep))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "rdma bench:", err)
		os.Exit(1)
	}
}

func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for suf, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suf) {
			s, mult = strings.TrimSuffix(s, suf), m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

type result struct {
	mbps, p50, p99 float64
	batches        int
	cpu, wall      time.Duration // CPU used while measuring (this process's, or ib_write_bw's), and the time it took
}

var schema = arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)

func batchOf(mem memory.Allocator, size int64) arrow.RecordBatch {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	n := int(size / 8)
	b.Reserve(n)
	for i := 0; i < n; i++ {
		b.UnsafeAppend(int64(i))
	}
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(schema, []arrow.Array{col}, int64(n))
}

// clock pairs each batch's send time with its arrival.
type clock struct {
	mu   sync.Mutex
	sent []time.Time
	lat  []float64
}

func (c *clock) send() {
	c.mu.Lock()
	c.sent = append(c.sent, time.Now())
	c.mu.Unlock()
}

func (c *clock) arrived(i int) {
	now := time.Now()
	c.mu.Lock()
	c.lat = append(c.lat, float64(now.Sub(c.sent[i]).Microseconds()))
	c.mu.Unlock()
}

func (c *clock) result(bytes int64, el time.Duration) result {
	slices.Sort(c.lat)
	q := func(f float64) float64 { return c.lat[min(len(c.lat)-1, int(f*float64(len(c.lat))))] }
	return result{mbps: float64(bytes) / el.Seconds() / 1e6, p50: q(0.5), p99: q(0.99), batches: len(c.lat)}
}

// sender is either stream's Sender.
type sender interface {
	Write(ctx context.Context, rec arrow.RecordBatch, carrier [stream.CarrierSize]byte) error
	Close(ctx context.Context) error
}

// measure sends a batch of size bytes for d through snd while next takes
// what arrives (done, if not nil, after each), and times both.
func measure(mem memory.Allocator, size int64, d time.Duration, snd sender, next func() (arrow.RecordBatch, error), done func() error) (result, error) {
	rec := batchOf(mem, size)
	defer rec.Release()
	c := &clock{}
	cpu0 := cpuTime()
	t0 := time.Now()
	sdone := make(chan error, 1)
	go func() {
		sdone <- sendFor(rec, d, c, func(b arrow.RecordBatch) error {
			return snd.Write(context.Background(), b, [stream.CarrierSize]byte{})
		}, func() error { return snd.Close(context.Background()) })
	}()
	n := 0
	for {
		got, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return result{}, err
		}
		c.arrived(n)
		n++
		got.Release()
		if done != nil {
			if err := done(); err != nil {
				return result{}, err
			}
		}
	}
	el := time.Since(t0)
	if err := <-sdone; err != nil {
		return result{}, err
	}
	res := c.result(int64(n)*size, el)
	res.cpu, res.wall = cpuTime()-cpu0, el
	return res, nil
}

// sendFor writes rec again and again for d through write, then closes.
func sendFor(rec arrow.RecordBatch, d time.Duration, c *clock, write func(arrow.RecordBatch) error, closeFn func() error) error {
	end := time.Now().Add(d)
	for n := 0; n < 4 || time.Now().Before(end); n++ {
		c.send()
		if err := write(rec); err != nil {
			return err
		}
	}
	return closeFn()
}

func listen(addr string) (*net.TCPListener, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return nil, err
	}
	return l.(*net.TCPListener), nil
}

func runRDMA(mem memory.Allocator, addr string, size int64, d time.Duration, device string, noMap bool) (result, error) {
	l, err := listen(addr)
	if err != nil {
		return result{}, err
	}
	defer l.Close()
	window := max(64<<20, int(4*size+(2<<20))) &^ (2<<20 - 1)
	rch := make(chan *rdma.Receiver, 1)
	ech := make(chan error, 1)
	go func() {
		c, err := rdma.Accept(context.Background(), l, 10*time.Second)
		if err != nil {
			ech <- err
			return
		}
		r, err := rdma.NewReceiver(context.Background(), c, rdma.RecvOptions{Window: window, Device: device})
		if err != nil {
			ech <- err
			return
		}
		rch <- r
	}()
	snd, err := rdma.Dial(context.Background(), l.Addr().String(), 10*time.Second, schema, rdma.SendOptions{Alloc: mem, NoMap: noMap, Device: device})
	if err != nil {
		return result{}, err
	}
	var r *rdma.Receiver
	select {
	case r = <-rch:
	case err := <-ech:
		snd.Abort(err)
		return result{}, err
	}
	defer r.Close()
	res, err := measure(mem, size, d, snd, func() (arrow.RecordBatch, error) {
		got, _, err := r.Next(context.Background())
		return got, err
	}, nil)
	if st := snd.Stats(); err == nil && st.Batches > 0 { // after an error the sender may still be writing
		fmt.Fprintf(os.Stderr, "rdma: %d batches in flight at most, %.1f on average as each was written\n",
			st.PeakInFlight, float64(st.InFlightSum)/float64(st.Batches))
	}
	return res, err
}

func runStream(mem memory.Allocator, addr string, size int64, d time.Duration) (result, error) {
	l, err := listen(addr)
	if err != nil {
		return result{}, err
	}
	defer l.Close()
	rch := make(chan *stream.Receiver, 1)
	ech := make(chan error, 1)
	go func() {
		c, err := stream.Accept(context.Background(), l, 10*time.Second)
		if err != nil {
			ech <- err
			return
		}
		r, err := stream.NewReceiver(context.Background(), c, stream.RecvOptions{Protocol: stream.ProtocolZflow, Alloc: mem, Credit: 4})
		if err == nil {
			err = r.Start() // the first credit, which the sender waits for
		}
		if err != nil {
			ech <- err
			return
		}
		rch <- r
	}()
	conn, err := stream.Dial(context.Background(), l.Addr().String(), 10*time.Second)
	if err != nil {
		return result{}, err
	}
	snd, err := stream.NewSender(context.Background(), conn, schema, stream.SendOptions{Protocol: stream.ProtocolZflow, Alloc: mem})
	if err != nil {
		return result{}, err
	}
	var r *stream.Receiver
	select {
	case r = <-rch:
	case err := <-ech:
		snd.Abort(err)
		return result{}, err
	}
	defer r.Close()
	return measure(mem, size, d, snd, func() (arrow.RecordBatch, error) {
		got, _, err := r.Next(context.Background())
		return got, err
	}, r.Done)
}

var bwLine = regexp.MustCompile(`(?m)^\s*(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$`)

// gidIndex is the device's GID holding an IPv4 address, as zflow picks it.
func gidIndex(dev string) string {
	for i := 0; i < 16; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/sys/class/infiniband/%s/ports/1/gids/%d", dev, i))
		if err != nil {
			break
		}
		if strings.HasPrefix(strings.TrimSpace(string(b)), "0000:0000:0000:0000:0000:ffff:") {
			return strconv.Itoa(i)
		}
	}
	return "0"
}

// runIBWriteBW runs perftest's ib_write_bw, server and client on dev, for
// d at message size size, and returns its average bandwidth.
func runIBWriteBW(dev string, size int64, d time.Duration) (result, error) {
	// Iterations, not -D: with large messages under emulation a timed run
	// can end before its first completion and report nothing.
	iters := max(5, int((64<<20)/size))
	args := []string{"-d", dev, "-x", gidIndex(dev), "-s", strconv.FormatInt(size, 10), "-n", strconv.Itoa(iters),
		"-t", strconv.Itoa(min(128, iters)), "-F"}
	cpu0, t0 := cpuTime(), time.Now()
	srv := exec.Command("ib_write_bw", args...)
	var sout bytes.Buffer
	srv.Stdout, srv.Stderr = &sout, &sout
	if err := srv.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		if srv.ProcessState == nil { // not waited for below
			srv.Process.Kill()
			srv.Wait()
		}
	}()
	var out []byte
	var err error
	for i := 0; i < 20; i++ {
		time.Sleep(300 * time.Millisecond)
		if out, err = exec.Command("ib_write_bw", append(args, "127.0.0.1")...).CombinedOutput(); err == nil {
			break
		}
	}
	if err != nil {
		return result{}, fmt.Errorf("ib_write_bw: %v\n%s\nserver:\n%s", err, out, sout.String())
	}
	m := bwLine.FindStringSubmatch(string(out))
	if m == nil {
		return result{}, fmt.Errorf("ib_write_bw printed no result line:\n%s", out)
	}
	avg, _ := strconv.ParseFloat(m[4], 64)
	n, _ := strconv.Atoi(m[2])
	if avg <= 0 || n == 0 {
		return result{}, fmt.Errorf("ib_write_bw reported %s MB/s over %s iterations:\n%s", m[4], m[2], out)
	}
	srv.Process.Kill()
	srv.Wait()
	// Both processes, set-up included (they are children: cpuTime counts them once waited for).
	return result{mbps: avg * 1.048576, batches: n, cpu: cpuTime() - cpu0, wall: time.Since(t0)}, nil // perftest's MB is 2^20 bytes
}

func save(dir string, rep *Report) error {
	name := "rdma_" + rep.Place
	if err := runinfo.Save(dir, name, rep, func(p string) error { return draw(p, rep) }); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".md"), []byte(markdown(rep)), 0o644)
}

func markdown(rep *Report) string {
	var b strings.Builder
	where := "host: the emulated provider (mapped: the receiver's region mapped in the sender, WRITEs placed by a memory copy; rdma_tcp: over the queue pair's TCP connection) against the TCP Arrow stream"
	ref := "stream"
	if rep.Place == "guest" {
		where = fmt.Sprintf("QEMU guest (TCG): real verbs on %s (Soft-RoCE) against perftest's ib_write_bw on the same device and the TCP Arrow stream", rep.Device)
		ref = "ib_write_bw"
	}
	fmt.Fprintf(&b, "# RDMA stream, %s\n\n`%s` — %s, %s, %d CPU, %s; load %s → %s; %d repetitions of %s per path and size, medians.\n\n%s.\n\n",
		rep.Place, rep.Command, rep.Time.Format("2006-01-02 15:04 MST"), rep.CPU, rep.NumCPU, rep.Go, rep.LoadStart, rep.LoadEnd, rep.Reps, rep.Duration, where)
	if ref == "stream" {
		b.WriteString("| batch | path | MB/s | × stream | p50 | p99 | batches |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: |\n")
	} else {
		fmt.Fprintf(&b, "| batch | path | MB/s | × %s | × stream | p50 | p99 | batches |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n", ref)
	}
	for _, p := range rep.Points {
		lat := func(v float64) string {
			if v == 0 {
				return "—"
			}
			return fmt.Sprintf("%.0f µs", v)
		}
		ratio := func(k string) string {
			if v, ok := p.Ratios[k]; ok {
				return fmt.Sprintf("%.2f", v)
			}
			return "—"
		}
		cols := ratio(ref)
		if ref != "stream" {
			cols += " | " + ratio("stream")
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f | %s | %s | %s | %d |\n", runinfo.Short(p.Bytes), p.Path, p.MBps, cols, lat(p.P50us), lat(p.P99us), p.Batches)
	}
	b.WriteString("\nLatency is from the sender's Write call to the receiver handing the batch out (both ends in one process); ib_write_bw reports bandwidth only.\n")
	return b.String()
}

func draw(path string, rep *Report) error {
	series := []string{"rdma (mapped)", "rdma over tcp", "tcp stream"}
	keys := []string{"rdma", "rdma_tcp", "stream"}
	title := "host: emulated RDMA vs the TCP Arrow stream, MB/s (median)"
	if rep.Place == "guest" {
		series = []string{"zflow rdma (verbs)", "tcp stream", "ib_write_bw"}
		keys = []string{"rdma", "stream", "ib_write_bw"}
		title = fmt.Sprintf("guest: RDMA on %s vs ib_write_bw and the TCP stream, MB/s (median)", rep.Device)
	}
	c := &chart.Bars{Title: title, YLabel: "MB/s", Format: "%.0f", Series: series,
		Notes: []string{fmt.Sprintf("%s, %d CPU, %s, load %s; %s", rep.CPU, rep.NumCPU, rep.Go, rep.LoadStart, rep.Command)}}
	sizes := []int64{}
	for _, p := range rep.Points {
		if !slices.Contains(sizes, p.Bytes) {
			sizes = append(sizes, p.Bytes)
		}
	}
	for _, s := range sizes {
		g := chart.Group{Label: runinfo.Short(s)}
		for _, k := range keys {
			v := 0.0
			for _, p := range rep.Points {
				if p.Bytes == s && p.Path == k {
					v = p.MBps
				}
			}
			g.Values = append(g.Values, v)
		}
		c.Groups = append(c.Groups, g)
	}
	img := chart.NewCanvas(1000, 520)
	c.Draw(img, image.Rect(0, 0, 1000, 520))
	return chart.WritePNG(path, img)
}
