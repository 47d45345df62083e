//go:build linux

// Command io measures zflow's file reads against fio on the same files in
// one run: fio's psync, io_uring, libaio (and mmap) engines against zflow's
// posix, uring (and mmap) storage backends read through io/storage as a
// file operator reads, at the same block size and queue depth, on tmpfs
// and on the disk; then the arrow file source → discard as `zflow run`
// on a real Arrow IPC file against fio's sequential bandwidth on that
// file. Repetitions are interleaved (every measurement of a repetition,
// in a shuffled order within each pattern, before the next repetition);
// each ratio is zflow ÷ fio in the same repetition, then the median.
//
// Places:
//   - tmpfs: a file on /dev/shm, buffered (the page cache is the file);
//   - disk: a file under the work folder (bench/data/io), O_DIRECT on both
//     sides, so neither reads the page cache;
//   - disk-buffered (root only): the same file without O_DIRECT, the page
//     cache dropped (echo 3 > /proc/sys/vm/drop_caches) before every
//     measurement, the file read once by both sides (a time-based job
//     would wrap and read the cache it filled); 1 MiB sequential reads
//     only.
//
// The files are the Arrow IPC files the arrow-source part reads, written
// by `zflow run` (generate → arrow sink) at the start, and removed at the
// end. It prints a table and writes <out>/io.json, io.md and io.png.
//
// Run it from the repository root after make build (make bench-io does
// both, and installs fio when missing):
//
//	go run -ldflags=-checklinkname=0 ./bench/cmd/io [-reps 5] [-runtime 2s] [-tmpfs-size 1GiB] [-disk-size 3GiB] [-out bench/results]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zflowdev/zflow/bench/internal/runinfo"

	_ "github.com/zflowdev/zflow/io/mmap"  // registers the mmap backend
	_ "github.com/zflowdev/zflow/io/posix" // registers the posix backend
	_ "github.com/zflowdev/zflow/io/uring" // registers the uring backend
)

// Pattern is a read pattern: block size, queue depth, sequential or random.
type Pattern struct {
	Name   string `json:"name"`
	Block  int    `json:"block"`
	Depth  int    `json:"depth"`
	Random bool   `json:"random"`
}

// The patterns. The queue depth is zflow's default (storage.DefaultQueueDepth,
// what a file operator's backend keeps in flight without queue_depth:),
// and 1 for the latency-bound random case.
var patterns = []Pattern{
	{"seq 1MiB qd32", 1 << 20, 32, false},
	{"seq 128KiB qd32", 128 << 10, 32, false},
	{"rand 4KiB qd32", 4 << 10, 32, true},
	{"rand 4KiB qd1", 4 << 10, 1, true},
}

// Place is where a file lives and how it is read.
type Place struct {
	Name     string   `json:"name"`
	Dir      string   `json:"dir"`
	Direct   bool     `json:"direct"`
	Drop     bool     `json:"drop_caches"` // page cache dropped before each measurement, the file read once
	Patterns []string `json:"patterns"`
	Engines  []string `json:"engines"` // "fio:psync", "zflow:posix", ...
}

// Row is one engine's figures for a place and pattern over the repetitions.
type Row struct {
	Place     string    `json:"place"`
	Pattern   string    `json:"pattern"`
	Engine    string    `json:"engine"`
	MBps      []float64 `json:"mb_per_s"` // 10^6 bytes/s, one per repetition
	IOPS      []float64 `json:"iops"`
	CPU       []float64 `json:"cpu_percent"`
	MedMBps   float64   `json:"median_mb_per_s"`
	MedIOPS   float64   `json:"median_iops"`
	MedCPU    float64   `json:"median_cpu_percent"`
	CallsPerK int64     `json:"syscalls_per_1000_requests,omitempty"` // zflow only, last repetition
}

// Pair is a zflow backend against the matching fio engine.
type Pair struct {
	Place   string    `json:"place"`
	Pattern string    `json:"pattern"`
	ZFlow   string    `json:"zflow"`
	Fio     string    `json:"fio"`
	Ratios  []float64 `json:"ratios"` // per repetition, zflow ÷ fio (bytes/s)
	Ratio   float64   `json:"ratio"`  // their median
	Target  float64   `json:"target,omitempty"`
}

// ArrowRun is the arrow source → discard on one place's file.
type ArrowRun struct {
	Name      string    `json:"name"`
	Place     string    `json:"place"`
	IO        string    `json:"io"`
	Direct    bool      `json:"direct"`
	Backend   string    `json:"backend"`       // the source's io line in the run summary
	MBps      []float64 `json:"mb_per_s"`      // file bytes ÷ the run's elapsed time
	WallMBps  []float64 `json:"wall_mb_per_s"` // file bytes ÷ the whole process's wall time
	Baseline  []string  `json:"baseline"`      // per repetition, the fio engine it is compared with (the fastest at seq 1MiB)
	Ratios    []float64 `json:"ratios"`        // per repetition, MBps ÷ that engine's bytes/s
	MedMBps   float64   `json:"median_mb_per_s"`
	Ratio     float64   `json:"ratio"`
	WallRatio float64   `json:"wall_ratio"`
	Target    float64   `json:"target"`
	Bytes     int64     `json:"file_bytes"`
	Rows      int64     `json:"rows"`
}

// Report is io.json.
type Report struct {
	runinfo.Machine
	Fio      string      `json:"fio"`
	Kernel   string      `json:"kernel"`
	Reps     int         `json:"reps"`
	Runtime  string      `json:"runtime_per_measurement"`
	Files    []FileInfo  `json:"files"`
	Places   []Place     `json:"places"`
	Patterns []Pattern   `json:"patterns"`
	Rows     []*Row      `json:"rows"`
	Pairs    []*Pair     `json:"pairs"`
	Arrow    []*ArrowRun `json:"arrow"`
	Notes    []string    `json:"notes"`
}

// FileInfo is one test file.
type FileInfo struct {
	Place string `json:"place"`
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
	Rows  int64  `json:"rows"`
}

type options struct {
	reps      int
	runtime   time.Duration
	tmpfsSize int64
	diskSize  int64
	tmpfsDir  string
	diskDir   string
	zflow     string
	out       string
	places    string
	arrow     bool
}

func main() {
	var o options
	var tmpfsSize, diskSize string
	flag.IntVar(&o.reps, "reps", 5, "measured repetitions (interleaved)")
	flag.DurationVar(&o.runtime, "runtime", 2*time.Second, "time each measurement reads for (fio --runtime, time-based; zflow reads as long)")
	flag.StringVar(&tmpfsSize, "tmpfs-size", "1GiB", "size of the tmpfs file (at most 2GiB)")
	flag.StringVar(&diskSize, "disk-size", "3GiB", "size of the disk file")
	flag.StringVar(&o.tmpfsDir, "tmpfs-dir", "/dev/shm", "a tmpfs folder")
	flag.StringVar(&o.diskDir, "disk-dir", "bench/data/io", "a folder on the disk (created; the file is removed at the end)")
	flag.StringVar(&o.zflow, "zflow", "bin/zflow", "the zflow binary (make build)")
	flag.StringVar(&o.out, "out", "bench/results", "folder for io.json, io.md and io.png ('' writes nothing)")
	flag.StringVar(&o.places, "places", "tmpfs,disk,disk-buffered", "places to measure")
	flag.BoolVar(&o.arrow, "arrow", true, "measure the arrow source → discard too")
	flag.StringVar(&reapPolicy, "reap", "auto", "how many completions zflow's uring reader waits for per Reap: auto (storage.ReapAtLeast: all of the depth on tmpfs, a quarter on a disk), quarter or all — to measure the policy")
	replot := flag.Bool("replot", false, "measure nothing: redraw <out>/io.png and io.md from <out>/io.json")
	flag.Parse()
	if !slices.Contains([]string{"auto", "quarter", "all"}, reapPolicy) {
		fatal(fmt.Errorf("-reap %q: want auto, quarter or all", reapPolicy))
	}
	if *replot {
		var rep Report
		err := runinfo.Replot(o.out, "io", &rep, func(path string) error { return writeOutputs(o.out, path, &rep) })
		if err != nil {
			fatal(err)
		}
		return
	}
	var err error
	if o.tmpfsSize, err = parseSize(tmpfsSize); err != nil {
		fatal(err)
	}
	if o.diskSize, err = parseSize(diskSize); err != nil {
		fatal(err)
	}
	if o.tmpfsSize > 2<<30 {
		fatal(fmt.Errorf("-tmpfs-size %s: at most 2GiB", tmpfsSize))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	rep, cleanup, err := run(ctx, o)
	cleanup()
	stop()
	if err != nil {
		fatal(err)
	}
	writeTable(os.Stdout, rep)
	if err := runinfo.Save(o.out, "io", rep, func(path string) error { return writeOutputs(o.out, path, rep) }); err != nil {
		fatal(err)
	}
}

func run(ctx context.Context, o options) (*Report, func(), error) {
	var files []string
	cleanup := func() {
		for _, f := range files {
			_ = os.Remove(f)
		}
	}
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return nil, cleanup, err
		}
	}
	if _, err := os.Stat(o.zflow); err != nil {
		return nil, cleanup, fmt.Errorf("%s: %w (run make build, or make bench-io)", o.zflow, err)
	}
	rep := &Report{Machine: runinfo.Start("io"), Fio: fioVersion(ctx), Kernel: kernel(), Reps: o.reps, Runtime: o.runtime.String(), Patterns: patterns}
	rep.Command = "go run -ldflags=-checklinkname=0 ./bench/cmd/io " + strings.Join(os.Args[1:], " ")
	engines, missing, err := fioEngines(ctx, []string{"psync", "io_uring", "libaio", "mmap"})
	if err != nil {
		return nil, cleanup, err
	}
	if len(missing) > 0 {
		rep.Notes = append(rep.Notes, "fio here lacks the engines "+strings.Join(missing, ", "))
	}
	root := os.Geteuid() == 0
	want := strings.Split(o.places, ",")
	var places []Place
	fioE := func(names ...string) []string {
		var out []string
		for _, n := range names {
			if slices.Contains(engines, n) {
				out = append(out, "fio:"+n)
			}
		}
		return out
	}
	all := patternNames()
	tmpfsEngines := append(fioE("psync", "io_uring", "libaio", "mmap"), "zflow:posix", "zflow:uring", "zflow:mmap")
	diskEngines := append(fioE("psync", "io_uring", "libaio"), "zflow:posix", "zflow:uring")
	if slices.Contains(want, "tmpfs") {
		places = append(places, Place{Name: "tmpfs", Dir: o.tmpfsDir, Patterns: all, Engines: tmpfsEngines})
	}
	if slices.Contains(want, "disk") {
		places = append(places, Place{Name: "disk", Dir: o.diskDir, Direct: true, Patterns: all, Engines: diskEngines})
	}
	if slices.Contains(want, "disk-buffered") {
		if root {
			places = append(places, Place{Name: "disk-buffered", Dir: o.diskDir, Drop: true, Patterns: []string{patterns[0].Name},
				Engines: append(fioE("psync", "io_uring"), "zflow:posix", "zflow:uring")})
		} else {
			rep.Notes = append(rep.Notes, "disk-buffered skipped: dropping the page cache needs root")
		}
	}
	rep.Places = places

	// The files: Arrow IPC files written by zflow, one per folder.
	made := map[string]FileInfo{}
	for _, p := range places {
		if fi, ok := made[p.Dir]; ok {
			fi.Place = p.Name
			rep.Files = append(rep.Files, fi)
			continue
		}
		size := o.diskSize
		if p.Name == "tmpfs" {
			size = o.tmpfsSize
		}
		if err := os.MkdirAll(p.Dir, 0o755); err != nil {
			return nil, cleanup, err
		}
		if err := checkSpace(p.Dir, size); err != nil {
			return nil, cleanup, err
		}
		path := filepath.Join(p.Dir, fmt.Sprintf("zflow-bench-io-%d.arrow", os.Getpid()))
		files = append(files, path)
		fmt.Fprintf(os.Stderr, "== writing %s (%s) with zflow: generate → arrow\n", path, human(size))
		fi, err := makeArrowFile(ctx, o.zflow, path, size)
		if err != nil {
			return nil, cleanup, err
		}
		fi.Place = p.Name
		made[p.Dir] = fi
		rep.Files = append(rep.Files, fi)
	}
	fileOf := func(place string) FileInfo {
		for _, f := range rep.Files {
			if f.Place == place {
				return f
			}
		}
		return FileInfo{}
	}

	// Rows and pairs, in a fixed order.
	rows := map[string]*Row{}
	key := func(place, pattern, engine string) string { return place + "|" + pattern + "|" + engine }
	for _, p := range places {
		for _, pat := range p.Patterns {
			for _, e := range p.Engines {
				r := &Row{Place: p.Name, Pattern: pat, Engine: e}
				rows[key(p.Name, pat, e)] = r
				rep.Rows = append(rep.Rows, r)
			}
			for _, m := range []struct {
				z, f   string
				target float64
			}{{"zflow:posix", "fio:psync", 0.9}, {"zflow:uring", "fio:io_uring", 0.9}, {"zflow:mmap", "fio:mmap", 0}} {
				if slices.Contains(p.Engines, m.z) && slices.Contains(p.Engines, m.f) {
					rep.Pairs = append(rep.Pairs, &Pair{Place: p.Name, Pattern: pat, ZFlow: m.z, Fio: m.f, Target: m.target})
				}
			}
		}
	}
	var arrows []*ArrowRun
	if o.arrow {
		for _, a := range []ArrowRun{
			{Name: "tmpfs, io: auto", Place: "tmpfs", IO: "auto"},
			{Name: "disk, io: uring, direct: true", Place: "disk", IO: "uring", Direct: true},
			{Name: "disk, io: auto", Place: "disk-buffered", IO: "auto"},
		} {
			if !slices.ContainsFunc(places, func(p Place) bool { return p.Name == a.Place }) {
				continue
			}
			a.Target = 0.8
			if a.Place == "disk-buffered" {
				a.Target = 0 // not a project target: shown for completeness
			}
			fi := fileOf(a.Place)
			a.Bytes, a.Rows = fi.Bytes, fi.Rows
			arrows = append(arrows, &a)
		}
	}
	rep.Arrow = arrows

	order := rand.New(rand.NewPCG(7, 11))
	for r := 0; r < o.reps; r++ {
		fmt.Fprintf(os.Stderr, "== repetition %d of %d\n", r+1, o.reps)
		best := map[string]struct {
			engine string
			bps    float64
		}{} // place → fastest fio engine at seq 1MiB this repetition
		for _, p := range places {
			fi := fileOf(p.Name)
			for _, pname := range p.Patterns {
				pat := patternByName(pname)
				got := map[string]float64{}
				for _, k := range order.Perm(len(p.Engines)) {
					e := p.Engines[k]
					if err := ctx.Err(); err != nil {
						return nil, cleanup, err
					}
					if p.Drop {
						if err := dropCaches(); err != nil {
							return nil, cleanup, err
						}
					}
					var bps, iops, cpu float64
					var calls int64
					side, name, _ := strings.Cut(e, ":")
					if side == "fio" {
						res, err := runFio(ctx, fioJob{File: fi.Path, Size: fi.Bytes, Random: pat.Random, Block: pat.Block, Depth: pat.Depth,
							Engine: name, Direct: p.Direct, Runtime: o.runtime, Once: p.Drop})
						if err != nil {
							return nil, cleanup, err
						}
						bps, iops, cpu = res.BytesPerSec, res.IOPS, res.CPU
					} else {
						res, err := runZ(ctx, zJob{File: fi.Path, Size: fi.Bytes, Random: pat.Random, Block: pat.Block, Depth: pat.Depth,
							Backend: name, Direct: p.Direct, Runtime: o.runtime, Once: p.Drop, Seed: uint64(r)})
						if err != nil {
							return nil, cleanup, fmt.Errorf("zflow %s on %s, %s: %w", name, p.Name, pname, err)
						}
						bps, iops, cpu, calls = res.BytesPerSec, res.IOPS, res.CPU, res.Calls
					}
					row := rows[key(p.Name, pname, e)]
					row.MBps = append(row.MBps, bps/1e6)
					row.IOPS = append(row.IOPS, iops)
					row.CPU = append(row.CPU, cpu)
					row.CallsPerK = calls
					got[e] = bps
					if side == "fio" && pname == patterns[0].Name && bps > best[p.Name].bps {
						best[p.Name] = struct {
							engine string
							bps    float64
						}{e, bps}
					}
					fmt.Fprintf(os.Stderr, "   %-13s %-16s %-14s %9.1f MB/s %9.0f IOPS %5.0f%% CPU\n", p.Name, pname, e, bps/1e6, iops, cpu)
				}
				for _, pr := range rep.Pairs {
					if pr.Place == p.Name && pr.Pattern == pname {
						pr.Ratios = append(pr.Ratios, got[pr.ZFlow]/got[pr.Fio])
					}
				}
			}
		}
		for _, a := range arrows {
			if a.Place == "disk-buffered" {
				if err := dropCaches(); err != nil {
					return nil, cleanup, err
				}
			}
			res, err := runArrow(ctx, o.zflow, fileOf(a.Place).Path, a.IO, a.Direct)
			if err != nil {
				return nil, cleanup, fmt.Errorf("arrow source on %s: %w", a.Place, err)
			}
			b := best[a.Place]
			bps := float64(a.Bytes) / res.Elapsed.Seconds()
			a.Backend = res.IO
			a.MBps = append(a.MBps, bps/1e6)
			a.WallMBps = append(a.WallMBps, float64(a.Bytes)/res.Wall.Seconds()/1e6)
			a.Baseline = append(a.Baseline, b.engine)
			a.Ratios = append(a.Ratios, bps/b.bps)
			fmt.Fprintf(os.Stderr, "   arrow %-32s %9.1f MB/s (%.2f× %s; whole process %.1f MB/s) %s\n", a.Name, bps/1e6, bps/b.bps, b.engine, float64(a.Bytes)/res.Wall.Seconds()/1e6, res.IO)
		}
	}
	for _, r := range rep.Rows {
		r.MedMBps, r.MedIOPS, r.MedCPU = runinfo.Median(r.MBps), runinfo.Median(r.IOPS), runinfo.Median(r.CPU)
	}
	for _, p := range rep.Pairs {
		p.Ratio = runinfo.Median(p.Ratios)
	}
	for _, a := range arrows {
		a.MedMBps, a.Ratio = runinfo.Median(a.MBps), runinfo.Median(a.Ratios)
		var wr []float64
		for i := range a.WallMBps {
			wr = append(wr, a.WallMBps[i]/a.MBps[i]*a.Ratios[i])
		}
		a.WallRatio = runinfo.Median(wr)
	}
	rep.LoadEnd = runinfo.LoadAvg()
	return rep, cleanup, nil
}

func patternNames() []string {
	var n []string
	for _, p := range patterns {
		n = append(n, p.Name)
	}
	return n
}

func patternByName(name string) Pattern {
	for _, p := range patterns {
		if p.Name == name {
			return p
		}
	}
	panic("io: no pattern " + name)
}

// dropCaches writes back dirty pages and drops the page cache (root).
func dropCaches() error {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("drop the page cache: %w", err)
	}
	return nil
}

// checkSpace refuses a file that would leave the file system with less
// than its own size free.
func checkSpace(dir string, size int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < 2*size {
		return fmt.Errorf("%s has %s free; a %s test file needs twice that", dir, human(free), human(size))
	}
	return nil
}

func kernel() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "?"
	}
	var b []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// parseSize reads 1GiB, 512MiB, 4096 (bytes).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	num := s
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if strings.HasSuffix(s, u.suffix) {
			mult, num = u.m, strings.TrimSuffix(s, u.suffix)
			break
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 1GiB, 512MiB)", s)
	}
	return int64(n * float64(mult)), nil
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}

func fatal(err error) {
	if errors.Is(err, context.Canceled) {
		err = errors.New("interrupted; test files removed")
	}
	fmt.Fprintln(os.Stderr, "io:", err)
	os.Exit(1)
}
