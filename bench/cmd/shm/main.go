//go:build linux

// Command shm measures handing batches to another process through a
// shared segment (package cxl) against sending their bytes over a Unix
// socket and over loopback TCP, in one run, with one memcpy of the batch
// as the physical reference:
//
//   - handoff latency: a descriptor goes to a peer process and comes back
//     through two rings of one segment (ping-pong); one way is half a round
//     trip. Parked (futex) and spinning, pinned (the two processes on two
//     CPUs) and not. p50 and p99 over every round trip.
//   - throughput for batches of 4 KiB to 64 MiB: shm publishes a batch
//     that already lies in the segment on a channel (the descriptor moves,
//     the consumer acknowledges), the sockets move the batch's bytes
//     (a lower bound of Arrow IPC over them: no encoding), memcpy copies
//     them once.
//
// It writes <out>/shm.json, shm.md and shm.png. Figures are ratios of the
// same run; the machine is shared.
//
//	go run ./bench/cmd/shm [-reps 3] [-out bench/results]
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"image"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/bench/internal/chart"
	"github.com/zflowdev/zflow/bench/internal/runinfo"
	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/cxl"
)

// Latency is one handoff mode's one-way times.
type Latency struct {
	Mode   string  `json:"mode"`
	P50ns  float64 `json:"p50_ns"`
	P99ns  float64 `json:"p99_ns"`
	Trips  int     `json:"round_trips"`
	Pinned bool    `json:"pinned"`
	Spin   bool    `json:"spin"`
}

// Throughput is one batch size's GB/s per path (medians over repetitions)
// and their ratios to the Unix socket of the same repetition.
type Throughput struct {
	Bytes int64              `json:"batch_bytes"`
	GBps  map[string]float64 `json:"gb_per_s"`
	VsUDS map[string]float64 `json:"ratio_vs_uds"`
}

// Report is the whole run.
type Report struct {
	runinfo.Machine
	Reps       int          `json:"reps"`
	Latency    []Latency    `json:"latency"`
	Throughput []Throughput `json:"throughput"`
}

var paths = []string{"shm", "uds", "tcp", "memcpy"}

func main() {
	if role := os.Getenv("ZFLOW_BENCH_SHM_PEER"); role != "" {
		if err := peer(role, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "peer:", err)
			os.Exit(1)
		}
		return
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	reps := flag.Int("reps", 3, "repetitions (interleaved; medians)")
	out := flag.String("out", "bench/results", "folder for shm.json, shm.md, shm.png ('' writes nothing)")
	replot := flag.Bool("replot", false, "measure nothing: redraw from <out>/shm.json")
	flag.Parse()
	if *replot {
		var rep Report
		check(runinfo.Replot(*out, "shm", &rep, func(p string) error { return draw(p, &rep) }))
		return
	}
	dir, err := os.MkdirTemp("/dev/shm", "zflow-bench-shm-")
	check(err)
	defer os.RemoveAll(dir)
	rep := &Report{Machine: runinfo.Start("shm"), Reps: *reps}
	for _, m := range []struct {
		pinned, spin bool
	}{{false, false}, {true, false}, {false, true}, {true, true}} {
		l, err := latency(filepath.Join(dir, "lat"), m.pinned, m.spin)
		check(err)
		rep.Latency = append(rep.Latency, l)
		fmt.Printf("latency %-22s p50 %8.0f ns  p99 %8.0f ns\n", l.Mode, l.P50ns, l.P99ns)
	}
	for _, size := range []int64{4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20} {
		t := Throughput{Bytes: size, GBps: map[string]float64{}, VsUDS: map[string]float64{}}
		runs := map[string][]float64{}
		ratios := map[string][]float64{}
		for range *reps {
			got := map[string]float64{}
			for _, p := range paths {
				v, err := throughput(p, filepath.Join(dir, "tp"), size)
				check(err)
				got[p] = v
				runs[p] = append(runs[p], v)
			}
			for _, p := range paths {
				ratios[p] = append(ratios[p], got[p]/got["uds"])
			}
		}
		for _, p := range paths {
			t.GBps[p], t.VsUDS[p] = runinfo.Median(runs[p]), runinfo.Median(ratios[p])
		}
		rep.Throughput = append(rep.Throughput, t)
		fmt.Printf("batch %-6s shm %8.2f GB/s (%6.1fx uds)  uds %6.2f  tcp %6.2f  memcpy %6.2f\n",
			runinfo.Short(size), t.GBps["shm"], t.VsUDS["shm"], t.GBps["uds"], t.GBps["tcp"], t.GBps["memcpy"])
	}
	rep.LoadEnd = runinfo.LoadAvg()
	check(runinfo.Save(*out, "shm", rep, func(p string) error { return draw(p, rep) }))
	if *out != "" {
		check(os.WriteFile(filepath.Join(*out, "shm.md"), []byte(markdown(rep)), 0o644))
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "shm:", err)
		os.Exit(1)
	}
}

// startPeer re-executes this binary as role with args and waits for its
// "ready" line.
func startPeer(role string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Env = append(os.Environ(), "ZFLOW_BENCH_SHM_PEER="+role)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("peer %s did not start: %q %v", role, buf, err)
	}
	return cmd, nil
}

// pin locks the calling goroutine to its thread and the thread to cpu.
func pin(cpu int) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}

const trips = 20000

func latency(path string, pinned, spin bool) (Latency, error) {
	os.Remove(path)
	s, err := cxl.Open(path, cxl.Options{Create: true, Size: 8 << 20})
	if err != nil {
		return Latency{}, err
	}
	defer s.Close()
	defer os.Remove(path)
	h := s.Header()
	there, back := h.DataOff, h.DataOff+cxl.RingBytes(64)
	s.InitRing(there, 64)
	s.InitRing(back, 64)
	opts := cxl.RingOptions{}
	if spin {
		opts.Spin = 200 * time.Microsecond
	}
	cmd, err := startPeer("latency", path, strconv.FormatBool(pinned), strconv.FormatBool(spin))
	if err != nil {
		return Latency{}, err
	}
	defer cmd.Wait()
	if pinned {
		if err := pin(0); err != nil {
			return Latency{}, err
		}
		defer runtime.UnlockOSThread()
	}
	ping, _ := s.OpenRing(there, true, opts)
	pong, _ := s.OpenRing(back, false, opts)
	ctx := context.Background()
	rtt := make([]float64, 0, trips)
	for i := range trips + 1000 {
		t0 := time.Now()
		if _, err := ping.Push(ctx, uint64(i)+1, 0, nil); err != nil {
			return Latency{}, err
		}
		e, err := pong.Pop(ctx, nil)
		if err != nil {
			return Latency{}, err
		}
		pong.Ack(e.Seq + 1)
		if i >= 1000 { // warmed up
			rtt = append(rtt, float64(time.Since(t0).Nanoseconds())/2)
		}
	}
	ping.Push(ctx, 0, 0, nil) // the peer's end
	slices.Sort(rtt)
	mode := map[bool]string{false: "parked", true: "spin"}[spin] + map[bool]string{false: ", unpinned", true: ", pinned"}[pinned]
	return Latency{Mode: mode, P50ns: rtt[len(rtt)/2], P99ns: rtt[len(rtt)*99/100], Trips: trips, Pinned: pinned, Spin: spin}, nil
}

// throughput returns GB/s of moving batches of size bytes along path for
// about half a second.
func throughput(path, seg string, size int64) (float64, error) {
	switch path {
	case "memcpy":
		src, dst := make([]byte, size), make([]byte, size)
		for i := range src {
			src[i] = byte(i)
		}
		n, t0 := 0, time.Now()
		for time.Since(t0) < 300*time.Millisecond {
			copy(dst, src)
			n++
		}
		return float64(n) * float64(size) / time.Since(t0).Seconds() / 1e9, nil
	case "uds", "tcp":
		return socketThroughput(path, size)
	}
	return shmThroughput(seg, size)
}

func socketThroughput(kind string, size int64) (float64, error) {
	network, addr := "tcp", "127.0.0.1:0"
	if kind == "uds" {
		network, addr = "unix", filepath.Join(os.TempDir(), fmt.Sprintf("zflow-bench-shm-%d.sock", os.Getpid()))
		os.Remove(addr)
		defer os.Remove(addr)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	cmd, err := startPeer("sink", network, ln.Addr().String(), strconv.FormatInt(size, 10))
	if err != nil {
		return 0, err
	}
	defer cmd.Wait()
	c, err := ln.Accept()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	batch := make([]byte, size)
	for i := range batch {
		batch[i] = byte(i)
	}
	n, t0 := 0, time.Now()
	for time.Since(t0) < 500*time.Millisecond || n < 4 {
		if _, err := c.Write(batch); err != nil {
			return 0, err
		}
		n++
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	// The peer replies with the bytes it read once it has read them all.
	var got [8]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		return 0, err
	}
	el := time.Since(t0)
	if int64(binary.LittleEndian.Uint64(got[:])) != int64(n)*size {
		return 0, fmt.Errorf("%s: the peer read %d bytes of %d", kind, binary.LittleEndian.Uint64(got[:]), int64(n)*size)
	}
	return float64(n) * float64(size) / el.Seconds() / 1e9, nil
}

func shmThroughput(path string, size int64) (float64, error) {
	os.Remove(path)
	defer os.Remove(path)
	pool, err := cxl.NewPool(buffers.PoolConfig{Path: path, Size: size + 64<<20})
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	s := pool.Segment()
	// The batch is written once, in the segment, as an arena's batch is.
	batch := pool.Allocate(int(size))
	defer pool.Free(batch)
	for i := range batch {
		batch[i] = byte(i)
	}
	off, _ := s.Contains(batch)
	part, err := s.Attach(cxl.RoleProducer, "bench")
	if err != nil {
		return 0, err
	}
	defer part.Detach()
	ctx := context.Background()
	prod, err := s.Produce(ctx, part, "bench", cxl.ChannelOptions{Capacity: 64})
	if err != nil {
		return 0, err
	}
	cmd, err := startPeer("consume", path)
	if err != nil {
		return 0, err
	}
	defer cmd.Wait()
	n, t0 := 0, time.Now()
	for time.Since(t0) < 500*time.Millisecond || n < 4 {
		d := pool.Allocate(cxl.DescHeaderBytes + 16)
		binary.LittleEndian.PutUint64(d[cxl.DescHeaderBytes:], uint64(off))
		binary.LittleEndian.PutUint64(d[cxl.DescHeaderBytes+8:], uint64(size))
		if _, err := prod.Publish(ctx, d, 0, func() { pool.Free(d) }); err != nil {
			return 0, err
		}
		n++
	}
	if err := prod.End(ctx); err != nil { // every batch acknowledged
		return 0, err
	}
	el := time.Since(t0)
	return float64(n) * float64(size) / el.Seconds() / 1e9, nil
}

// peer is the other process of each measurement.
func peer(role string, args []string) error {
	ctx := context.Background()
	switch role {
	case "latency":
		pinned, _ := strconv.ParseBool(args[1])
		spin, _ := strconv.ParseBool(args[2])
		s, err := cxl.Open(args[0], cxl.Options{})
		if err != nil {
			return err
		}
		h := s.Header()
		opts := cxl.RingOptions{}
		if spin {
			opts.Spin = 200 * time.Microsecond
		}
		if pinned {
			if err := pin(1); err != nil {
				return err
			}
		}
		in, _ := s.OpenRing(h.DataOff, false, opts)
		out, _ := s.OpenRing(h.DataOff+cxl.RingBytes(64), true, opts)
		fmt.Println("ready")
		for {
			e, err := in.Pop(ctx, nil)
			if err != nil {
				return err
			}
			in.Ack(e.Seq + 1)
			if e.A == 0 {
				return nil
			}
			if _, err := out.Push(ctx, e.A, 0, nil); err != nil {
				return err
			}
		}
	case "sink":
		size, _ := strconv.ParseInt(args[2], 10, 64)
		fmt.Println("ready")
		c, err := net.Dial(args[0], args[1])
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, min(size, 4<<20))
		var total uint64
		for {
			k, err := c.Read(buf)
			total += uint64(k)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
		}
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], total)
		_, err = c.Write(b[:])
		return err
	case "consume":
		s, err := cxl.Open(args[0], cxl.Options{})
		if err != nil {
			return err
		}
		part, err := s.Attach(cxl.RoleConsumer, "bench")
		if err != nil {
			return err
		}
		fmt.Println("ready")
		c, err := s.Consume(ctx, part, "bench", cxl.ChannelOptions{Wait: 10 * time.Second})
		if err != nil {
			return err
		}
		data := s.Bytes()
		for {
			d, err := c.Next(ctx)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			// The consumer has the batch where the producer wrote it: a
			// slice of its own mapping (read one byte of it).
			off := binary.LittleEndian.Uint64(d.Payload)
			n := binary.LittleEndian.Uint64(d.Payload[8:])
			if off+n > uint64(len(data)) || data[off] != 0 {
				return fmt.Errorf("batch %d at %d+%d: not the batch written", d.Seq, off, n)
			}
			c.Release(d.Seq)
		}
	}
	return fmt.Errorf("unknown role %q", role)
}

func markdown(rep *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Shared segment against sockets\n\n`%s` — %s, %s, %d CPU, %s; load %s → %s; %d repetitions, medians.\n\n",
		rep.Command, rep.Time.Format("2006-01-02 15:04 MST"), rep.CPU, rep.NumCPU, rep.Go, rep.LoadStart, rep.LoadEnd, rep.Reps)
	b.WriteString("## Handoff latency, one way (half a round trip through two rings)\n\n| mode | p50 | p99 |\n| --- | ---: | ---: |\n")
	for _, l := range rep.Latency {
		fmt.Fprintf(&b, "| %s | %.0f ns | %.0f ns |\n", l.Mode, l.P50ns, l.P99ns)
	}
	b.WriteString("\n## Throughput (GB/s) and × Unix socket of the same repetition\n\n| batch | shm | × uds | uds | tcp | × uds | memcpy | × uds |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, t := range rep.Throughput {
		fmt.Fprintf(&b, "| %s | %.2f | **%.1f** | %.2f | %.2f | %.2f | %.2f | %.2f |\n", runinfo.Short(t.Bytes),
			t.GBps["shm"], t.VsUDS["shm"], t.GBps["uds"], t.GBps["tcp"], t.VsUDS["tcp"], t.GBps["memcpy"], t.VsUDS["memcpy"])
	}
	b.WriteString("\nshm moves a descriptor of a batch already in the segment (the consumer acknowledges each); the sockets move the batch's bytes (a lower bound of Arrow IPC over them); memcpy copies them once in one process.\n")
	return b.String()
}

func draw(path string, rep *Report) error {
	c := &chart.Bars{
		Title:  "batch handoff throughput / Unix socket throughput (same repetition, median)",
		YLabel: "x uds",
		Format: "%.1f",
		Series: []string{"shm (descriptor)", "tcp loopback", "memcpy once"},
		Notes: []string{
			"shm publishes a batch already in the segment; sockets move its bytes; memcpy copies them once",
			fmt.Sprintf("%s, %d CPU, %s, load %s; %s", rep.CPU, rep.NumCPU, rep.Go, rep.LoadStart, rep.Command),
		},
	}
	for _, t := range rep.Throughput {
		c.Groups = append(c.Groups, chart.Group{Label: runinfo.Short(t.Bytes), Values: []float64{t.VsUDS["shm"], t.VsUDS["tcp"], t.VsUDS["memcpy"]}})
	}
	img := chart.NewCanvas(1000, 520)
	c.Draw(img, image.Rect(0, 0, 1000, 520))
	return chart.WritePNG(path, img)
}
