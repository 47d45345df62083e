//go:build linux

// Command nvmeof measures zflow's NVMe/TCP initiator against zflow's target
// over loopback, and in the same run the two things it should be compared
// with: plain loopback TCP (iperf3, one stream of 1 MiB writes) and a local
// fio on the file the file namespace sits on (psync and io_uring,
// buffered, as the target reads it).
//
// The target runs in this process, not as `zflow nvmeof serve`: one CPU
// profile (-cpuprofile) then covers both ends of the transport, which is
// what the profile is for, and getrusage(RUSAGE_SELF) gives the CPU of
// both ends together — the figure comparable with iperf3's sender plus
// receiver and with fio's (which also does the "device" work itself). The
// cost of that choice: both ends share one Go runtime (GOMAXPROCS = the
// machine's CPUs), where two processes would each have their own.
//
// The target has one subsystem with two namespaces of -size bytes: NSID 1
// in RAM (4 KiB blocks), NSID 2 on a file under -dir (512-byte blocks,
// buffered pread/pwrite, fsync on Flush), both filled with the same
// random bytes first, so the page cache holds the file as it holds fio's.
// For each namespace, 1 and 4 I/O queues: 4 KiB random reads with 1, 32
// and 128 commands in flight (in total, spread evenly over the queues),
// and 1 MiB sequential reads and writes with 8 in flight. Repetitions are
// interleaved: each repetition runs every measurement once, ours and the
// baselines, in a shuffled order. Each ratio is ours ÷ its baseline in the
// same repetition, then the median. Targets: sequential ≥ 0.8× iperf3;
// 4 KiB random reads at QD 32 ≥ 0.5× fio psync (pread) IOPS on the file.
//
// It prints a table and writes <out>/nvmeof.json, nvmeof.md and
// nvmeof.png. From the repository root (make bench-nvmeof installs fio and
// iperf3 when missing):
//
//	go run ./bench/cmd/nvmeof [-reps 3] [-runtime 2s] [-size 256MiB] [-dir bench/data/nvmeof] [-out bench/results] [-cpuprofile FILE]
package main

import (
	"context"
	crand "crypto/rand"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zflowdev/zflow/bench/internal/runinfo"
	"github.com/zflowdev/zflow/nvmeof/target"
)

const (
	subNQN  = "nqn.2024-01.dev.zflow:bench"
	hostNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-0000000000be"
)

// Measure is one measurement, repeated: ours (Kind "nvmeof": our initiator
// against our target) or a baseline ("fio", "iperf3").
type Measure struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	NS      string `json:"namespace,omitempty"` // ram or file
	NSID    uint32 `json:"nsid,omitempty"`
	Queues  int    `json:"queues,omitempty"`
	Pattern string `json:"pattern"`
	Block   int    `json:"block"`
	Depth   int    `json:"depth"`
	Random  bool   `json:"random"`
	Write   bool   `json:"write"`
	Engine  string `json:"engine,omitempty"` // fio's

	IOPS     []float64 `json:"iops"`     // per repetition
	MBps     []float64 `json:"mb_per_s"` // 10^6 bytes/s
	CPUPerIO []float64 `json:"cpu_us_per_io"`
	MedIOPS  float64   `json:"median_iops"`
	MedMBps  float64   `json:"median_mb_per_s"`
	MedCPU   float64   `json:"median_cpu_us_per_io"`
}

// Pair is one of ours against a baseline.
type Pair struct {
	Ours     string    `json:"ours"`
	Baseline string    `json:"baseline"`
	By       string    `json:"by"`     // iops or bytes/s
	Ratios   []float64 `json:"ratios"` // per repetition
	Ratio    float64   `json:"ratio"`  // their median
	Target   float64   `json:"target,omitempty"`
}

// Report is nvmeof.json.
type Report struct {
	runinfo.Machine
	Kernel   string     `json:"kernel"`
	Fio      string     `json:"fio"`
	Iperf    string     `json:"iperf3"`
	Reps     int        `json:"reps"`
	Runtime  string     `json:"runtime_per_measurement"`
	Size     int64      `json:"namespace_bytes"`
	File     string     `json:"file"`
	Measures []*Measure `json:"measures"`
	Pairs    []*Pair    `json:"pairs"`
	Notes    []string   `json:"notes"`
}

const (
	rand4K  = "rand 4KiB read"
	seqRead = "seq 1MiB read"
	seqWr   = "seq 1MiB write"
	seqQD   = 8
)

// measures lists every measurement of a run.
func measures() []*Measure {
	var ms []*Measure
	for _, ns := range []struct {
		name string
		id   uint32
	}{{"ram", 1}, {"file", 2}} {
		for _, q := range []int{1, 4} {
			add := func(pat string, block, depth int, random, write bool) {
				ms = append(ms, &Measure{Name: fmt.Sprintf("nvmeof %s q%d %s qd%d", ns.name, q, pat, depth), Kind: "nvmeof", NS: ns.name, NSID: ns.id,
					Queues: q, Pattern: pat, Block: block, Depth: depth, Random: random, Write: write})
			}
			for _, qd := range []int{1, 32, 128} {
				add(rand4K, 4096, qd, true, false)
			}
			add(seqRead, 1<<20, seqQD, false, false)
			add(seqWr, 1<<20, seqQD, false, true)
		}
	}
	fio := func(engine, pat string, block, depth int, random, write bool) {
		ms = append(ms, &Measure{Name: fmt.Sprintf("fio %s %s qd%d", engine, pat, depth), Kind: "fio", Engine: engine,
			Pattern: pat, Block: block, Depth: depth, Random: random, Write: write})
	}
	fio("psync", rand4K, 4096, 1, true, false)
	fio("io_uring", rand4K, 4096, 32, true, false)
	fio("psync", seqRead, 1<<20, 1, false, false)
	fio("psync", seqWr, 1<<20, 1, false, true)
	ms = append(ms, &Measure{Name: "iperf3 1MiB", Kind: "iperf3", Pattern: "1 stream, 1MiB writes", Block: 1 << 20, Depth: 1})
	return ms
}

// pairs says what each of ours is compared with, and the targets.
func pairs(ms []*Measure) []*Pair {
	var ps []*Pair
	for _, m := range ms {
		if m.Kind != "nvmeof" {
			continue
		}
		switch m.Pattern {
		case rand4K:
			p := &Pair{Ours: m.Name, Baseline: "fio psync " + rand4K + " qd1", By: "iops"}
			if m.Depth == 32 {
				p.Target = 0.5
				ps = append(ps, p, &Pair{Ours: m.Name, Baseline: "fio io_uring " + rand4K + " qd32", By: "iops"})
				continue
			}
			ps = append(ps, p)
		default:
			ps = append(ps, &Pair{Ours: m.Name, Baseline: "iperf3 1MiB", By: "bytes/s", Target: 0.8})
		}
	}
	return ps
}

type options struct {
	reps    int
	runtime time.Duration
	size    int64
	dir     string
	out     string
	profile string
	only    string
}

func main() {
	var o options
	var size string
	flag.IntVar(&o.reps, "reps", 3, "measured repetitions (interleaved)")
	flag.DurationVar(&o.runtime, "runtime", 2*time.Second, "time each measurement runs for")
	flag.StringVar(&size, "size", "256MiB", "bytes of each namespace (and of the file)")
	flag.StringVar(&o.dir, "dir", "bench/data/nvmeof", "folder of the file namespace (created; the file is removed at the end)")
	flag.StringVar(&o.out, "out", "bench/results", "folder for nvmeof.json, nvmeof.md and nvmeof.png ('' writes nothing)")
	flag.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the run (both ends of ours) to this file")
	flag.StringVar(&o.only, "only", "", "measure only the names this regular expression matches, anywhere in the name (anchor it with ^…$ for one); for a profile: pairs missing a side get no ratio, and the report is not written unless -out is given")
	replot := flag.Bool("replot", false, "measure nothing: redraw <out>/nvmeof.png and nvmeof.md from <out>/nvmeof.json")
	flag.Parse()
	if o.only != "" && !flagSet("out") {
		o.out = "" // a partial run does not replace the committed report
	}
	if *replot {
		var rep Report
		if err := runinfo.Replot(o.out, "nvmeof", &rep, func(path string) error { return writeOutputs(o.out, path, &rep) }); err != nil {
			fatal(err)
		}
		return
	}
	var err error
	if o.size, err = parseSize(size); err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o)
	if err != nil {
		fatal(err)
	}
	writeTable(os.Stdout, rep)
	if err := runinfo.Save(o.out, "nvmeof", rep, func(path string) error { return writeOutputs(o.out, path, rep) }); err != nil {
		fatal(err)
	}
}

func run(ctx context.Context, o options) (*Report, error) {
	rep := &Report{Machine: runinfo.Start("nvmeof"), Reps: o.reps, Runtime: o.runtime.String(), Size: o.size,
		Kernel: firstLine("uname", "-r"), Fio: firstLine("fio", "--version"), Iperf: firstLine("iperf3", "--version")}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, err
	}
	rep.File = filepath.Join(o.dir, "ns2")
	defer os.Remove(rep.File)
	ram, err := target.NewRAM(o.size, 12)
	if err != nil {
		return nil, err
	}
	f, err := target.OpenFile(rep.File, o.size)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := fill(ram, f, o.size); err != nil {
		return nil, err
	}
	tg, err := target.New(target.Config{SubNQN: subNQN, Namespaces: []target.Namespace{ram, f}})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	served := make(chan error, 1)
	go func() { served <- tg.Serve(ln) }()
	defer func() { tg.Close(); <-served }()
	ip, err := startIperf(ctx)
	if err != nil {
		return nil, err
	}
	defer ip.stop()

	if o.profile != "" {
		pf, err := os.Create(o.profile)
		if err != nil {
			return nil, err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	ms := measures()
	if o.only != "" {
		re, err := regexp.Compile(o.only)
		if err != nil {
			return nil, fmt.Errorf("-only: %w", err)
		}
		ms = slices.DeleteFunc(ms, func(m *Measure) bool { return !re.MatchString(m.Name) })
		if len(ms) == 0 {
			return nil, fmt.Errorf("-only %q matches no measurement", o.only)
		}
	}
	order := make([]*Measure, len(ms))
	copy(order, ms)
	for i := range o.reps {
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, m := range order {
			var r result
			var err error
			switch m.Kind {
			case "nvmeof":
				r, err = driveOurs(ctx, ln.Addr().String(), subNQN, m, o.runtime)
			case "fio":
				r, err = runFio(ctx, m, rep.File, o.size, o.runtime)
			case "iperf3":
				r, err = runIperf(ctx, ip, m, o.runtime)
			}
			if err != nil {
				return nil, fmt.Errorf("repetition %d, %s: %w", i+1, m.Name, err)
			}
			m.IOPS = append(m.IOPS, r.iops())
			m.MBps = append(m.MBps, r.bps()/1e6)
			m.CPUPerIO = append(m.CPUPerIO, r.cpuPerIO())
			fmt.Fprintf(os.Stderr, "rep %d %-40s %10.0f IOPS %9.1f MB/s %7.1f µs CPU/IO\n", i+1, m.Name, r.iops(), r.bps()/1e6, r.cpuPerIO())
		}
	}
	byName := map[string]*Measure{}
	for _, m := range ms {
		m.MedIOPS, m.MedMBps, m.MedCPU = runinfo.Median(m.IOPS), runinfo.Median(m.MBps), runinfo.Median(m.CPUPerIO)
		byName[m.Name] = m
	}
	rep.Measures = ms
	// -only may leave a pair's side out: such a pair has no ratio.
	rep.Pairs = slices.DeleteFunc(pairs(ms), func(p *Pair) bool { return byName[p.Ours] == nil || byName[p.Baseline] == nil })
	for _, p := range rep.Pairs {
		a, b := byName[p.Ours], byName[p.Baseline]
		for i := range a.IOPS {
			if p.By == "iops" {
				p.Ratios = append(p.Ratios, a.IOPS[i]/b.IOPS[i])
			} else {
				p.Ratios = append(p.Ratios, a.MBps[i]/b.MBps[i])
			}
		}
		p.Ratio = runinfo.Median(p.Ratios)
	}
	rep.LoadEnd = runinfo.LoadAvg()
	return rep, nil
}

// fill writes the same random bytes into both namespaces, 1 MiB at a time.
func fill(ram *target.RAM, f *target.File, size int64) error {
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		crand.Read(buf)
		if _, err := ram.WriteAt(buf, off); err != nil {
			return err
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return err
		}
	}
	return f.Flush()
}

func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

// flagSet says whether the command line set the flag name.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil || n <= 0 || n*u.mult%(1<<20) != 0 {
				return 0, fmt.Errorf("size %q: want a positive whole number of MiB, such as 256MiB", s)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("size %q", s)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "nvmeof bench:", err)
	os.Exit(1)
}
