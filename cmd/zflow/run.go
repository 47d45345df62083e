package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/telemetry"
	"golang.org/x/term"
)

func cmdRun(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runWith(ctx, args, stdin, stdout, stderr, runHooks{})
}

// runHooks let a command built on run (zflow worker) change how the
// pipeline loads and learn how the run ended.
type runHooks struct {
	load []zflow.Option
	done func(engine.Summary, error)
}

func runWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, h runHooks) error {
	fs := newFlags("run", stderr)
	quiet := fs.Bool("quiet", false, "nothing on stderr but errors: no progress line, no summary, no warnings")
	var asJSON jsonFlag
	fs.Var(&asJSON, "json", "print the summary as JSON on stdout, or with --json=FILE write it to FILE (an invalid pipeline: its errors as JSON)")
	arena := fs.String("arena", "", "the run's arena, overriding settings.memory.arena: hugepage, thp, plain, heap (asked explicitly, a fallback is a warning)")
	progressEvery := fs.Duration("progress", time.Second, "progress line interval on a terminal")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error (--quiet: error, unless given)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	traceExporter := fs.String("trace-exporter", "", "none, stdout or otlp (overrides settings.trace.exporter and OTEL_TRACES_EXPORTER)")
	traceEndpoint := fs.String("trace-endpoint", "", "OTLP endpoint for traces and metrics, host:port or URL (overrides OTEL_EXPORTER_OTLP_ENDPOINT)")
	traceFile := fs.String("trace-file", "", "write the run's spans to this file (OTLP/JSON, one object per line)")
	traceBatches := fs.Float64("trace-batches", -1, "fraction of source batches traced through every operator, 0 to 1 (overrides settings.trace.batches)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at http://HOST:PORT/metrics during the run")
	clusterKind := fs.String("cluster", "", "run on a cluster instead of this host: kubernetes (settings.cluster says how)")
	kubeconfig := fs.String("kubeconfig", "", "with --cluster kubernetes: the kubeconfig file (default $KUBECONFIG, ~/.kube/config, or the pod's service account)")
	keep := fs.Bool("keep", false, "with --cluster kubernetes: leave the run's Job and pods in place afterwards (Kubernetes deletes them after settings.cluster.ttl)")
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usageError{"run: want exactly one pipeline file"}
	}
	if *clusterKind != "" {
		if len(h.load) > 0 {
			return usageError{"worker: --cluster is the coordinator's flag"}
		}
		return cmdClusterRun(ctx, *clusterKind, *kubeconfig, *keep, *quiet, *traceFile, files[0], stdout, stderr)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Sprintf("run: --log-level: %v", err)}
	}
	if *quiet && !flagSet(fs, "log-level") { // an explicit --log-level wins
		level = max(level, slog.LevelError)
	}
	p, err := zflow.Load(files[0], append([]zflow.Option{zflow.WithStdin(stdin)}, h.load...)...)
	if err != nil {
		if asJSON.on {
			if jerr := asJSON.write(stdout, newErrorReport(err, files[0])); jerr != nil {
				return jerr
			}
		}
		return loadError(err)
	}
	// settings.threads below the CPUs this process may use bounds the Go
	// runtime too, so `threads: 1` means one thread of work at a time.
	if t := p.Plan().Settings.Threads; t > 0 && t < runtime.GOMAXPROCS(0) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(t))
	}
	var memOpt []zflow.RunOption
	if *arena != "" {
		m, err := arenaFlag(p.Plan().Settings.Memory, *arena)
		if err != nil {
			return usageError{fmt.Sprintf("run: --arena %s: %v", *arena, err)}
		}
		memOpt = append(memOpt, zflow.WithMemory(m))
	}
	if asJSON.on && asJSON.path == "" {
		// The summary goes to stdout: a sink writing there (a stdout sink,
		// or a file sink with path -) would mix data into the JSON.
		for _, id := range p.Plan().StdoutNodes() {
			typ := ""
			for _, n := range p.Plan().Describe().Nodes {
				if n.ID == id {
					typ = n.Type
				}
			}
			what := "(stdout)"
			if typ != "stdout" {
				what = fmt.Sprintf("(%s, path: -)", typ)
			}
			return usageError{fmt.Sprintf("run: --json prints the summary on stdout, where sink %q %s writes its rows too: drop --json, or write the rows to a file sink", id, what)}
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	// First SIGINT/SIGTERM: cancel and shut down cleanly (sinks remove their
	// temporary files). Second: exit at once.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	interrupted := make(chan os.Signal, 1)
	stopSigs := make(chan struct{})
	defer close(stopSigs)
	go func() {
		select {
		case s := <-sigs:
			interrupted <- s
			fmt.Fprintf(stderr, "\nzflow: %v: stopping (again to kill)\n", s)
			cancel(fmt.Errorf("interrupted by %v", s))
		case <-stopSigs:
			return
		}
		select {
		case <-sigs:
			fmt.Fprintln(stderr, "zflow: killed")
			os.Exit(exitInterrupt)
		case <-stopSigs:
		}
	}()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return usageError{fmt.Sprintf("run: --cpuprofile: %v", err)}
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("run: start cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	showProgress := !*quiet && isTerminal(stderr)
	var progressMu sync.Mutex
	progressOn := showProgress
	stopProgress := func() {
		progressMu.Lock()
		defer progressMu.Unlock()
		if progressOn {
			progressOn = false
			fmt.Fprint(stderr, "\r\033[K")
		}
	}
	tcfg, err := p.TelemetryConfig()
	if err != nil {
		return usageError{fmt.Sprintf("run: %v", err)}
	}
	if *traceExporter != "" {
		tcfg.Traces.Exporter = *traceExporter
	}
	if *traceEndpoint != "" {
		tcfg.Traces.Endpoint, tcfg.Metrics.Endpoint = *traceEndpoint, *traceEndpoint
		tcfg.Traces.EndpointIsBase, tcfg.Metrics.EndpointIsBase = false, false
	}
	if *traceFile != "" {
		tcfg.Traces.File = *traceFile
	}
	if *metricsAddr != "" {
		tcfg.Metrics.Listen = *metricsAddr
	}
	if *traceBatches != -1 && !(*traceBatches >= 0 && *traceBatches <= 1) { // -1: not given; NaN fails too
		return usageError{fmt.Sprintf("run: --trace-batches %v: want 0 to 1", *traceBatches)}
	}
	tcfg.Stdout = stdout
	if asJSON.on && asJSON.path == "" {
		tcfg.Stdout = stderr // stdout holds the JSON summary alone
	}
	tel, err := telemetry.Setup(ctx, tcfg)
	if err != nil {
		return exitError{code: exitUsage, err: fmt.Errorf("zflow: %w", err)}
	}
	defer func() {
		// Flushes within the telemetry timeout whatever the collector does
		// (one that refuses connections costs a dial, not the timeout);
		// what could not be delivered is one warning, never a failed run.
		if err := tel.Shutdown(context.Background()); err != nil && !*quiet {
			fmt.Fprintf(stderr, "zflow: warning: %v\n", err)
		}
	}()
	if a := tel.MetricsAddr(); a != "" && !*quiet {
		fmt.Fprintf(stderr, "zflow: metrics at http://%s/metrics\n", a)
	}
	runOpts := []zflow.RunOption{zflow.WithLogger(logger), zflow.WithBeforeCommit(stopProgress), zflow.WithStdout(stdout),
		zflow.WithTracerProvider(tel.TracerProvider()), zflow.WithMeterProvider(tel.MeterProvider())}
	if *traceBatches >= 0 {
		runOpts = append(runOpts, zflow.WithBatchSampling(*traceBatches))
	}
	runOpts = append(runOpts, memOpt...)
	x := p.Start(runCtx, runOpts...)
	if showProgress {
		tick := time.NewTicker(*progressEvery)
	loop:
		for {
			select {
			case <-x.Done():
				break loop
			case <-tick.C:
				progressMu.Lock()
				if progressOn {
					writeProgress(stderr, x.Snapshot())
				}
				progressMu.Unlock()
			}
		}
		tick.Stop()
		stopProgress()
	}
	sum, runErr := x.Wait()
	if h.done != nil {
		h.done(sum, runErr)
	}
	switch {
	case asJSON.on:
		if err := asJSON.write(stdout, sum); err != nil {
			return err
		}
		if asJSON.path != "" && !*quiet { // stderr is free: the table too
			writeSummary(stderr, &sum)
		}
	case !*quiet:
		writeSummary(stderr, &sum)
	}
	select {
	case s := <-interrupted:
		return exitError{code: exitInterrupt, err: fmt.Errorf("zflow: interrupted by %v; stopped cleanly, no sink output was published", s)}
	default:
	}
	if runErr != nil {
		var oe *engine.OpError
		if errors.As(runErr, &oe) {
			return exitError{code: exitFailure, err: fmt.Errorf("zflow: run failed: %w", runErr)}
		}
		return exitError{code: exitFailure, err: fmt.Errorf("zflow: %w", runErr)}
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// writeProgress prints one line: rows and bytes read by the sources so far,
// and their rate.
func writeProgress(w io.Writer, s engine.Summary) {
	rows, bytes, copied, _ := s.Totals()
	sec := s.Elapsed.Seconds()
	fmt.Fprintf(w, "\r\033[K%s  rows %s  %s  %s rows/s  %s/s  copied %s",
		s.Elapsed.Round(100*time.Millisecond), engine.HumanCount(rows), engine.HumanBytes(bytes),
		engine.HumanCount(int64(float64(rows)/sec)), engine.HumanBytes(int64(float64(bytes)/sec)),
		engine.HumanBytes(copied))
}

// arenaFlag is the run's memory with the arena --arena names: asked
// explicitly, so a fallback is a warning (not QuietFallback).
func arenaFlag(m buffers.PoolConfig, kind string) (buffers.PoolConfig, error) {
	k, err := buffers.LookupKind(kind)
	if err != nil {
		return m, errors.New(strings.TrimPrefix(err.Error(), "buffers: "))
	}
	if k.Path && m.Path == "" {
		return m, fmt.Errorf("arena %s needs a path: set settings.memory.path in the pipeline", kind)
	}
	if m.Kind != kind {
		m.Page = 0 // hugepage: the default 2 MiB; other kinds have none
		if !k.Path {
			m.Path, m.Size = "", 0
		}
	}
	if kind == "hugepage" && m.Page == 0 {
		m.Page = buffers.Page2MiB
	}
	m.Kind, m.QuietFallback = kind, false
	return m, nil
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
