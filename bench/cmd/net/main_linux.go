//go:build linux

// Command net is `make bench-net`: zflow's socket send paths against
// iperf3, on loopback and across a veth pair between two network
// namespaces it creates, and the Arrow stream end to end (tcp_out → tcp_in
// as two `zflow run` processes) against iperf3 in the same run.
//
// For each message size and path — write (netzc copy: writev),
// MSG_ZEROCOPY (netzc msg_zerocopy), SEND_ZC (io_uring, netzc uring_zc),
// iperf3 and iperf3 --zerocopy — it sends one message per call for -dur to
// a receiver process that reads with buffers of the message size (as
// iperf3's server does) and records throughput (bytes the receiver got ÷
// the time until its reply), each Send's duration, the time from a Send's
// start until its release ran (the kernel's completion on the zero-copy
// paths), the CPU seconds per GB of both processes (getrusage; iperf3's
// own figures for iperf3) and the fraction of zero-copy completions the
// kernel flagged as copied. Every cell runs -reps times, interleaved,
// and the tables give medians; ratios are taken against iperf3 (plain, same
// size, same network) of the same repetition.
//
// As root it creates the namespaces zflow-bench-net-a (sender) and
// zflow-bench-net-b (receivers) joined by a veth pair, and removes them on
// exit and on SIGINT (and removes those a killed run left, with their
// processes); otherwise the veth half is skipped with the reason.
//
// It writes <out>/net.json, <out>/net.md and <out>/net.png. Run from the
// repository root after `make build` (the stream half runs bin/zflow):
//
//	go run -ldflags=-checklinkname=0 ./bench/cmd/net [-dur 1s] [-reps 5] [-sizes 4096,...] [-net loopback,veth] [-stream-rows 20000000] [-out bench/results]
//	go run -ldflags=-checklinkname=0 ./bench/cmd/net -replot   # net.md and net.png again from net.json
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/bench/internal/runinfo"
	"github.com/zflowdev/zflow/io/netzc"
)

type config struct {
	sizes      []int
	dur        time.Duration
	reps       int
	nets       []string
	zflow      string
	streamRows int64
	dataDir    string
	out        string
}

func main() {
	receiver := flag.Bool("receiver", false, "run as the receiver (the benchmark starts it)")
	replot := flag.Bool("replot", false, "redraw net.png and rewrite net.md from <out>/net.json, measuring nothing")
	listen := flag.String("listen", "127.0.0.1:0", "receiver: address to listen on")
	sizes := flag.String("sizes", "4096,16384,65536,262144,1048576,4194304", "message sizes in bytes")
	var cfg config
	flag.DurationVar(&cfg.dur, "dur", time.Second, "time per cell (iperf3 takes whole seconds)")
	flag.IntVar(&cfg.reps, "reps", 5, "repetitions of every cell, interleaved")
	nets := flag.String("net", "loopback,veth", "networks: loopback, veth (veth needs root)")
	flag.StringVar(&cfg.zflow, "zflow", "bin/zflow", "the zflow binary for the stream half (make build)")
	flag.Int64Var(&cfg.streamRows, "stream-rows", 20_000_000, "rows of the Arrow file the stream half sends (0 skips it)")
	flag.StringVar(&cfg.dataDir, "data", "/dev/shm", "folder for the stream half's Arrow file (removed at the end)")
	flag.StringVar(&cfg.out, "out", "bench/results", "folder for net.json, net.md and net.png ('' writes nothing)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("net: ")
	if *receiver {
		if err := receive(*listen, os.Stdout); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *replot {
		if err := redraw(cfg.out); err != nil {
			log.Fatal(err)
		}
		return
	}
	var err error
	if cfg.sizes, err = runinfo.Ints(*sizes); err != nil {
		log.Fatal(err)
	}
	cfg.nets = strings.Split(*nets, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg)
	interrupted := ctx.Err() != nil
	stop()
	if interrupted {
		log.Fatal("interrupted; the namespaces and the processes it started are gone")
	}
	if err != nil {
		log.Fatal(err)
	}
}

// run measures everything and writes the report; whatever it set up is
// removed before it returns, on error and on SIGINT too.
func run(ctx context.Context, cfg config) error {
	if _, err := exec.LookPath("iperf3"); err != nil {
		return fmt.Errorf("iperf3 is not installed (make bench-net installs it): %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	rep := &Report{Machine: runinfo.Start("net"), Kernel: kernel(), Sizes: cfg.sizes,
		Seconds: cfg.dur.Seconds(), Reps: cfg.reps}
	rep.Command = "go run -ldflags=-checklinkname=0 ./bench/cmd/net " + strings.Join(os.Args[1:], " ")
	paths := sendPaths(rep)
	nets, cleanup, err := networks(ctx, cfg.nets, exe, rep)
	defer cleanup()
	if err != nil {
		return err
	}
	st, err := prepareStream(ctx, cfg, nets, rep)
	defer st.remove()
	if err != nil {
		return err
	}
	acc := newAccumulator()
	for r := range cfg.reps {
		for _, n := range nets {
			log.Printf("repetition %d/%d, %s", r+1, cfg.reps, n.name)
			if err := measureNet(ctx, n, paths, cfg, r, acc); err != nil {
				return fmt.Errorf("%s: %w", n.name, err)
			}
			if err := st.measure(ctx, n, cfg, acc); err != nil {
				return fmt.Errorf("%s: stream: %w", n.name, err)
			}
		}
	}
	rep.LoadEnd = runinfo.LoadAvg()
	acc.fill(rep)
	rep.Targets = targets(rep)
	writeMarkdown(os.Stdout, rep)
	return save(cfg.out, rep)
}

func kernel() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// path is one way of sending: ours through netzc, or iperf3.
type path struct {
	name  string
	mode  netzc.Mode // "" for iperf3
	iperf bool
	zc    bool // iperf3 --zerocopy
}

// The paths, in the tables' order; iperf3 (plain) is every ratio's
// baseline.
const baseline = "iperf3"

func sendPaths(rep *Report) []path {
	ps := []path{{name: baseline, iperf: true}, {name: "iperf3 -Z", iperf: true, zc: true},
		{name: "write", mode: netzc.Copy}, {name: "MSG_ZEROCOPY", mode: netzc.MsgZeroCopy}}
	if err := netzc.UringZCSupport(); err != nil {
		rep.Skipped = append(rep.Skipped, fmt.Sprintf("SEND_ZC: %v", err))
		log.Printf("skipping SEND_ZC: %v", err)
	} else {
		ps = append(ps, path{name: "SEND_ZC", mode: netzc.UringZC})
	}
	for _, p := range ps {
		rep.Paths = append(rep.Paths, p.name)
	}
	return ps
}

// networks sets up the networks asked for and starts their servers; the
// returned cleanup stops them and removes the namespaces.
func networks(ctx context.Context, names []string, exe string, rep *Report) ([]*network, func(), error) {
	var nets []*network
	veth := false
	cleanup := func() {
		for _, n := range nets {
			n.stop()
		}
		if veth {
			removeVeth()
		}
	}
	for _, name := range names {
		var n *network
		switch name {
		case "loopback":
			n = loopback()
		case "veth":
			if os.Geteuid() != 0 {
				reason := "veth: skipped, creating network namespaces needs root"
				rep.Skipped = append(rep.Skipped, reason)
				log.Print(reason)
				continue
			}
			veth = true
			var err error
			if n, err = setupVeth(); err != nil {
				return nil, cleanup, err
			}
		default:
			return nil, cleanup, fmt.Errorf("unknown network %q (known: loopback, veth)", name)
		}
		nets = append(nets, n)
		addr, err := startServers(ctx, n, exe)
		if err != nil {
			return nil, cleanup, fmt.Errorf("%s: %w", n.name, err)
		}
		n.recvAddr = addr
		rep.Networks = append(rep.Networks, n.name)
	}
	return nets, cleanup, nil
}

// measureNet runs every size and path once on n (repetition r: the path
// order rotates with it).
func measureNet(ctx context.Context, n *network, paths []path, cfg config, r int, acc *accumulator) error {
	for _, size := range cfg.sizes {
		msg := make([]byte, size)
		for i := range msg {
			msg[i] = byte(i*7 + 1)
		}
		var got []sampleAt
		for i := range paths {
			p := paths[(i+r)%len(paths)]
			s, err := measure(ctx, n, p, msg, cfg.dur)
			if err != nil {
				return fmt.Errorf("%s, %d bytes: %w", p.name, size, err)
			}
			got = append(got, sampleAt{key: cellKey{n.name, p.name, size}, s: s})
		}
		acc.addGroup(got)
	}
	return nil
}

// measure runs one cell once.
func measure(ctx context.Context, n *network, p path, msg []byte, d time.Duration) (sample, error) {
	if p.iperf {
		r, err := runIperf(ctx, n, len(msg), d, p.zc)
		if err != nil {
			return sample{}, err
		}
		return sample{gbps: float64(r.Bytes) / r.Seconds / 1e9,
			senderCPU: perGB(r.SenderCPUSec, r.Bytes), receiverCPU: perGB(r.ReceiverCPUSec, r.Bytes)}, nil
	}
	r, err := runPath(ctx, n.sendNS, n.recvAddr, p.mode, msg, d)
	if err != nil {
		return sample{}, err
	}
	s := sample{gbps: float64(r.Bytes) / r.Seconds / 1e9, latency: true,
		sendP50: percentile(r.SendUs, 50), sendP99: percentile(r.SendUs, 99),
		relP50: percentile(r.ReleaseUs, 50), relP99: percentile(r.ReleaseUs, 99),
		senderCPU: perGB(r.SenderCPUSec, r.Bytes), receiverCPU: perGB(r.ReceiverCPUSec, r.Bytes)}
	if c := r.Stats.Completions; c > 0 {
		s.hasCopied, s.copied = true, float64(r.Stats.CopiedCompletions)/float64(c)
	}
	return s, nil
}

// streamHalf is the Arrow stream part: its data file and the message size
// iperf3 is compared at.
type streamHalf struct {
	dir  string
	data string
	mean int // the mean message (batch) size
	msg  int // iperf3 -l: mean, up to iperf3's maximum
}

func (st *streamHalf) remove() {
	if st.dir != "" {
		_ = os.RemoveAll(st.dir)
	}
}

// prepareStream writes the Arrow file and learns the batch size from a
// warm-up run on the first network; with -stream-rows 0 it does nothing.
func prepareStream(ctx context.Context, cfg config, nets []*network, rep *Report) (*streamHalf, error) {
	st := &streamHalf{}
	if cfg.streamRows <= 0 || len(nets) == 0 {
		return st, nil
	}
	if _, err := os.Stat(cfg.zflow); err != nil {
		return st, fmt.Errorf("the stream half runs %s (make build): %w", cfg.zflow, err)
	}
	dir, err := os.MkdirTemp(cfg.dataDir, "zflow-bench-net-")
	if err != nil {
		return st, err
	}
	st.dir = dir
	log.Printf("writing %d rows to %s", cfg.streamRows, dir)
	if st.data, err = makeStreamData(ctx, cfg.zflow, dir, cfg.streamRows); err != nil {
		return st, err
	}
	warm, err := runStream(ctx, nets[0], cfg.zflow, dir, st.data)
	if err != nil {
		return st, fmt.Errorf("stream warm-up: %w", err)
	}
	mean := int(warm.BodyBytes / max(warm.Batches, 1))
	st.mean, st.msg = mean, iperfSize(mean)
	rep.Stream.Rows, rep.Stream.BodyBytes, rep.Stream.Batches = cfg.streamRows, warm.BodyBytes, warm.Batches
	rep.Stream.MeanMessage, rep.Stream.IperfMessage = mean, st.msg
	return st, nil
}

// measure runs the stream once on n, and iperf3 at its message size.
func (st *streamHalf) measure(ctx context.Context, n *network, cfg config, acc *accumulator) error {
	if st.data == "" {
		return nil
	}
	r, err := runStream(ctx, n, cfg.zflow, st.dir, st.data)
	if err != nil {
		return err
	}
	ip, err := runIperf(ctx, n, st.msg, cfg.dur, false)
	if err != nil {
		return err
	}
	fw, err := writeFile(ctx, n, st.data, st.mean)
	if err != nil {
		return fmt.Errorf("writev of the file: %w", err)
	}
	acc.addStream(n.name, streamSample{
		gbps:        float64(r.BodyBytes) / r.Seconds / 1e9,
		iperf:       float64(ip.Bytes) / ip.Seconds / 1e9,
		fileWrite:   float64(fw.Bytes) / fw.Seconds / 1e9,
		senderCPU:   perGB(r.SenderCPUSec, r.BodyBytes),
		receiverCPU: perGB(r.ReceiverCPUSec, r.BodyBytes),
	})
	return nil
}

// save writes net.json, net.md and net.png into dir ("" writes nothing).
func save(dir string, rep *Report) error {
	if dir == "" {
		return nil
	}
	if err := saveMarkdown(dir, rep); err != nil {
		return err
	}
	return runinfo.Save(dir, "net", rep, func(p string) error { return writeChart(p, rep) })
}

func saveMarkdown(dir string, rep *Report) error {
	f, err := os.Create(filepath.Join(dir, "net.md"))
	if err != nil {
		return err
	}
	writeMarkdown(f, rep)
	return f.Close()
}

// redraw rewrites net.md and net.png in dir from net.json.
func redraw(dir string) error {
	var rep Report
	if err := runinfo.Replot(dir, "net", &rep, func(p string) error { return writeChart(p, &rep) }); err != nil {
		return err
	}
	return saveMarkdown(dir, &rep)
}

// targets checks the project's targets against the medians.
func targets(rep *Report) []string {
	var out []string
	for _, net := range rep.Networks {
		for _, size := range rep.Sizes {
			w, ok := rep.cell(net, "write", size)
			if !ok {
				continue
			}
			out = append(out, verdict(w.VsIperf >= 0.9, fmt.Sprintf("%s %s: write %.2f× iperf3 (target ≥ 0.9×)", net, runinfo.Short(int64(size)), w.VsIperf)))
			if size < 64<<10 {
				continue
			}
			for _, zc := range []string{"MSG_ZEROCOPY", "SEND_ZC"} {
				if c, ok := rep.cell(net, zc, size); ok {
					out = append(out, verdict(c.GBps >= w.GBps, fmt.Sprintf("%s %s: %s %.2f GB/s vs write %.2f GB/s (target: not slower)", net, runinfo.Short(int64(size)), zc, c.GBps, w.GBps)))
				}
			}
		}
	}
	for _, s := range rep.Stream.Cells {
		out = append(out, verdict(s.VsIperf >= 0.8, fmt.Sprintf("%s: Arrow stream end to end %.2f× iperf3 at %s (target ≥ 0.8×)", s.Network, s.VsIperf, runinfo.Short(int64(rep.Stream.IperfMessage)))))
	}
	return out
}

func verdict(ok bool, s string) string {
	if ok {
		return "met: " + s
	}
	return "MISSED: " + s
}

func (rep *Report) cell(net, path string, size int) (Cell, bool) {
	i := slices.IndexFunc(rep.Cells, func(c Cell) bool { return c.Network == net && c.Path == path && c.Size == size })
	if i < 0 {
		return Cell{}, false
	}
	return rep.Cells[i], true
}
