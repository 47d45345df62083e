package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/cluster"
	"github.com/zflowdev/zflow/cluster/kube"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/telemetry"
)

// kubeClient connects as kubeconfig says, else as $KUBECONFIG or
// ~/.kube/config do, else as the pod's service account.
func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("zflow: kubernetes: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("zflow: kubernetes: %w", err)
	}
	return cs, nil
}

// prepareCluster plans the cluster run of file and compiles worker 0's
// part of it, which the plan and the summary describe.
func prepareCluster(kind, file string) (*cluster.Job, *zflow.Pipeline, error) {
	if kind != "kubernetes" {
		return nil, nil, usageError{fmt.Sprintf("--cluster %q: the one cluster zflow runs on is kubernetes", kind)}
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, usageError{fmt.Sprintf("zflow: %v", err)}
	}
	job, err := cluster.Prepare(src, file, cluster.Options{})
	if err != nil {
		return nil, nil, loadError(err)
	}
	p, err := zflow.Parse(src, file, zflow.WithRewrite(func(g *engine.Graph) error { return job.WorkerGraph(g, 0, "plan", cluster.PlanPeers) }))
	if err != nil {
		return nil, nil, loadError(err)
	}
	return job, p, nil
}

func cmdClusterRun(ctx context.Context, kind, kubeconfig string, keep, quiet bool, traceFile, file string, stdout, stderr io.Writer) (err error) {
	job, p, err := prepareCluster(kind, file)
	if err != nil {
		return err
	}
	cs, err := kubeClient(kubeconfig)
	if err != nil {
		return exitError{code: exitUsage, err: err}
	}
	// Tracing: the coordinator's span is the run's root, the workers'
	// run spans its children; with a trace file, theirs are added to it.
	tcfg, err := p.TelemetryConfig()
	if err != nil {
		return usageError{fmt.Sprintf("run: %v", err)}
	}
	if traceFile != "" {
		tcfg.Traces.File = traceFile
		if job.TraceDir() == "" {
			return usageError{"run: --trace-file with --cluster: the workers write their spans under settings.cluster.host_paths, which names none"}
		}
		job.TraceFiles = true
	}
	tcfg.Stdout = stderr
	tel, err := telemetry.Setup(ctx, tcfg)
	if err != nil {
		return exitError{code: exitUsage, err: fmt.Errorf("zflow: %w", err)}
	}
	tp := tel.TracerProvider()
	if tp == nil { // tracing is off
		tp = noop.NewTracerProvider()
	}
	ctx, span := tp.Tracer("github.com/zflowdev/zflow/cluster").Start(ctx, "zflow cluster run "+job.Name,
		trace.WithAttributes(attribute.String("zflow.cluster.run", job.RunID), attribute.Int("zflow.cluster.workers", job.Workers),
			attribute.String("zflow.cluster.namespace", job.Namespace)))
	if span.SpanContext().IsSampled() {
		carrier := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, carrier)
		job.Trace = carrier["traceparent"]
	}
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		if serr := tel.Shutdown(context.WithoutCancel(ctx)); serr != nil && !quiet {
			fmt.Fprintf(stderr, "zflow: warning: %v\n", serr)
		}
		if job.TraceFiles {
			if merr := mergeTraces(traceFile, job.TraceDir()); merr != nil && !quiet {
				fmt.Fprintf(stderr, "zflow: warning: %v\n", merr)
			}
		}
	}()
	if stale := job.Stale(); len(stale) > 0 && !quiet {
		fmt.Fprintf(stderr, "zflow: cluster: staging directories of other runs (a coordinator that died, or one still running): %v\n", stale)
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(stderr, "\nzflow: %v: deleting the run's Job\n", s)
			cancel(fmt.Errorf("interrupted by %v", s))
		case <-runCtx.Done():
		}
	}()
	var logw io.Writer = stderr
	if quiet {
		logw = nil
	}
	res, err := kube.Run(runCtx, cs, job, kube.Options{Log: logw, Keep: keep})
	if err != nil {
		if runCtx.Err() != nil && ctx.Err() == nil { // our signal handler cancelled it
			return exitError{code: exitInterrupt, err: fmt.Errorf("zflow: %w", err)}
		}
		return exitError{code: exitFailure, err: fmt.Errorf("zflow: %w", err)}
	}
	typed(&res.Summary, p.Plan())
	if !quiet {
		writeSummary(stderr, &res.Summary)
		writeWorkers(stderr, res)
	}
	return nil
}

// mergeTraces appends the workers' trace files in dir (OTLP/JSON, one
// object per line, as the coordinator's) to file, then removes dir.
func mergeTraces(file, dir string) error {
	defer os.RemoveAll(dir)
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(names) == 0 {
		return err
	}
	slices.Sort(names)
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("cluster: add the workers' spans to %s: %w", file, err)
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Close()
			return fmt.Errorf("cluster: a worker's spans: %w", err)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			b = append(b, '\n')
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return fmt.Errorf("cluster: add the workers' spans to %s: %w", file, err)
		}
	}
	return f.Close()
}

// typed fills the kind and type of each operator of a merged summary from
// the plan.
func typed(s *engine.Summary, plan *engine.Plan) {
	kinds := map[string][2]string{}
	for _, n := range plan.Describe().Nodes {
		kinds[n.ID] = [2]string{n.Kind, n.Type}
	}
	for i := range s.Ops {
		k := kinds[s.Ops[i].ID]
		s.Ops[i].Kind, s.Ops[i].Type = k[0], k[1]
	}
}

// writeWorkers is the table of the workers: where each ran and what it
// read and wrote.
func writeWorkers(w io.Writer, res *kube.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "worker\tnode\tpod\ttime\trows read\trows written\t")
	for i, r := range res.Reports {
		var in, out int64
		for _, o := range r.Ops {
			if o.RowsIn == 0 {
				in += o.RowsOut // a source: what it read
			}
		}
		for _, o := range r.Ops {
			if o.RowsOut == 0 {
				out += o.RowsIn // a sink: what it wrote
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%d\t%d\t\n", i, res.Nodes[i], r.Attempt, time.Duration(r.Elapsed).Round(time.Millisecond), in, out)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d pods ran for %d workers\n", res.Pods, len(res.Reports))
}

// cmdWorker runs one worker's part of a cluster run: what a pod of the
// run's Job executes (zflow worker --run ID --workers N --dir DIR FILE).
// The worker index and the attempt come from the pod (JOB_COMPLETION_INDEX,
// POD_NAME) unless given; the report goes to the termination message.
func cmdWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("worker", stderr)
	run := fs.String("run", "", "the run's id (the coordinator's)")
	workers := fs.Int("workers", 0, "how many workers the run has")
	dir := fs.String("dir", "", "the directory the pipeline's relative paths resolve against")
	index := fs.Int("index", -1, "this worker's index (default $JOB_COMPLETION_INDEX)")
	attempt := fs.String("attempt", "", "this attempt's name (default $POD_NAME, else the host name)")
	reportPath := fs.String("report", "/dev/termination-log", "where the worker writes its report for the coordinator")
	traceDir := fs.String("trace-dir", "", "write the worker's spans to DIR/ATTEMPT.json, for the coordinator's trace file")
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 || *run == "" || *workers < 1 || *dir == "" {
		return usageError{"worker: want --run ID --workers N --dir DIR and one pipeline file"}
	}
	if *index < 0 {
		v, err := strconv.Atoi(os.Getenv("JOB_COMPLETION_INDEX"))
		if err != nil {
			return usageError{"worker: no --index and no JOB_COMPLETION_INDEX"}
		}
		*index = v
	}
	if *attempt == "" {
		*attempt = os.Getenv("POD_NAME")
	}
	if *attempt == "" {
		*attempt, _ = os.Hostname()
	}
	report := func(r cluster.Report) {
		if err := os.WriteFile(*reportPath, r.Encode(), 0o644); err != nil {
			fmt.Fprintf(stderr, "zflow: worker: write the report: %v\n", err)
		}
	}
	src, err := os.ReadFile(files[0])
	if err != nil {
		report(cluster.Report{Index: *index, Attempt: *attempt, Err: err.Error()})
		return usageError{fmt.Sprintf("worker: %v", err)}
	}
	job, err := cluster.Prepare(src, files[0], cluster.Options{Dir: *dir, RunID: *run, Workers: *workers})
	if err != nil {
		report(cluster.Report{Index: *index, Attempt: *attempt, Err: err.Error()})
		return loadError(err)
	}
	// The run's span is a child of the coordinator's.
	if tp := os.Getenv(kube.TraceparentEnv); tp != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
	}
	// The coordinator drives the run over the control port.
	job.Token = os.Getenv(kube.TokenEnv)
	return workerStage(ctx, job, *index, *attempt, *traceDir, files[0], stdout, stderr, report)
}

// workerStage is a worker of a cluster run: it runs its part of the
// pipeline once per epoch the coordinator starts, over the control
// connection (see cluster.Stage), and exits when told to; without a
// coordinator (its connection ended) it removes what it staged and exits
// with cluster.ExitCoordinatorLost.
func workerStage(ctx context.Context, job *cluster.Job, index int, pod, traceDir, file string, stdout, stderr io.Writer, report func(cluster.Report)) error {
	// A pod being deleted gets SIGTERM: stop, and remove what was staged.
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	fail := func(code int, err error) error {
		report(cluster.Report{Index: index, Attempt: pod, Err: err.Error()})
		return exitError{code: code, err: fmt.Errorf("zflow: worker: %w", err)}
	}
	tok, err := hex.DecodeString(job.Token)
	if err != nil || len(tok) != cluster.TokenSize {
		return fail(exitUsage, fmt.Errorf("$%s is not the run's token", kube.TokenEnv))
	}
	mesh, err := cluster.NewMesh(index, job.Workers, [cluster.TokenSize]byte(tok), fmt.Sprintf(":%d", cluster.DataPort))
	if err != nil {
		return fail(exitFailure, err)
	}
	defer mesh.Close()
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", cluster.ControlPort))
	if err != nil {
		return fail(exitFailure, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	ctl, err := cluster.AwaitCoordinator(wctx, l, job.Token, index, pod)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			// SIGTERM: this pod is being deleted (and replaced), which is
			// no reason to fail the Job.
			return fail(exitInterrupt, err)
		}
		return fail(cluster.ExitCoordinatorLost, err)
	}
	defer ctl.Close()
	lost := func() error {
		if ctx.Err() != nil { // SIGTERM: the pod is being deleted
			return fail(exitInterrupt, fmt.Errorf("stopped: %v", context.Cause(ctx)))
		}
		return fail(cluster.ExitCoordinatorLost, fmt.Errorf("the coordinator's connection ended (%v): nothing of this worker's is published", ctl.Lost()))
	}
	var last *cluster.Report
	var staged []string // the attempts this worker ran
	exited := false
	defer func() {
		if !exited { // nothing of this worker's will be published
			for _, a := range staged {
				_ = job.DiscardAttempt(a)
			}
		}
	}()
	for {
		var m cluster.ControlMsg
		select {
		case <-ctx.Done(): // SIGTERM: the pod is being deleted
			return fail(exitInterrupt, fmt.Errorf("stopped: %v", context.Cause(ctx)))
		case msg, ok := <-ctl.Msgs:
			if !ok {
				return lost()
			}
			m = msg
		}
		switch m.Op {
		case "run":
			last = nil
			if err := mesh.SetEpoch(m.Epoch, m.Peers); err != nil {
				return fail(exitFailure, err)
			}
			attempt := fmt.Sprintf("%s-e%d", pod, m.Epoch)
			for _, a := range staged {
				_ = job.DiscardAttempt(a) // an aborted epoch's
			}
			staged = append(staged[:0], attempt)
			args := []string{file}
			if traceDir != "" {
				args = []string{"--trace-file", filepath.Join(traceDir, attempt+".json"), file}
			}
			type ended struct {
				r   cluster.Report
				err error
			}
			res := make(chan ended, 1)
			rctx, stop := context.WithCancelCause(ctx)
			go func() {
				var r cluster.Report
				err := runWith(rctx, args, nil, stdout, stderr, runHooks{
					load: []zflow.Option{zflow.WithRewrite(func(g *engine.Graph) error { return job.WorkerGraph(g, index, attempt, mesh) })},
					done: func(s engine.Summary, err error) { r = cluster.NewReport(index, attempt, s, err) },
				})
				res <- ended{r, err}
			}()
			var e ended
			for got := false; !got; {
				select {
				case e = <-res:
					got = true
				case m2, ok := <-ctl.Msgs:
					switch {
					case !ok:
						stop(errors.New("the coordinator is gone"))
						<-res
						return lost()
					case m2.Op == "abort" && m2.Epoch != m.Epoch:
						// Not this run's: ignore.
					case m2.Op == "abort" || m2.Op == "fail":
						stop(fmt.Errorf("the coordinator said %s", m2.Op))
						<-res
						if m2.Op == "fail" {
							return fail(exitFailure, errors.New(m2.Err))
						}
						got, e.err = true, errAborted
					}
				}
			}
			switch {
			case e.err == errAborted, ctx.Err() != nil: // aborted, or SIGTERM (next turn)
			case e.err != nil:
				_ = ctl.Send(cluster.ControlMsg{Op: "failed", Epoch: m.Epoch, Err: e.err.Error()})
			default:
				last = &e.r
				_ = ctl.Send(cluster.ControlMsg{Op: "done", Epoch: m.Epoch})
			}
			stop(nil)
		case "abort":
			last = nil
		case "exit":
			if last == nil {
				return fail(exitFailure, errors.New("told to exit without a finished epoch"))
			}
			report(*last)
			exited = true // the coordinator publishes it
			return nil
		case "fail":
			return fail(exitFailure, errors.New(m.Err))
		}
	}
}

var errAborted = errors.New("aborted by the coordinator")

// planCluster prints what zflow run --cluster would do: as text, the
// workers' shares and outputs and worker 0's plan; as yaml, the
// Kubernetes objects it would create.
func planCluster(kind, format, file string, stdout io.Writer) error {
	job, p, err := prepareCluster(kind, file)
	if err != nil {
		return err
	}
	kjob, cm := kube.Objects(job, "")
	switch format {
	case "yaml":
		for i, obj := range []any{kjob, cm} {
			b, err := yaml.Marshal(obj)
			if err != nil {
				return fmt.Errorf("zflow: plan: %w", err)
			}
			if i > 0 {
				fmt.Fprintln(stdout, "---")
			}
			stdout.Write(b)
		}
		return nil
	case "text":
		fmt.Fprintf(stdout, "cluster run %s: %s\n", job.RunID, kube.String(kjob))
		for _, s := range job.Sources {
			how := "read by worker 0 alone (it cannot split)"
			if s.Split {
				how = fmt.Sprintf("split: each of the %d workers reads its share", job.Workers)
			}
			fmt.Fprintf(stdout, "  source %s (%s): %s\n", s.ID, s.Type, how)
		}
		for _, n := range job.Needs {
			v := ""
			if n.Value != "" {
				v = " " + n.Value
			}
			fmt.Fprintf(stdout, "  nodes must have %s (%s%s): %s\n", n.Key, n.Op, v, n.Why)
		}
		for _, s := range job.Sinks {
			fmt.Fprintf(stdout, "  sink %s (%s): %s/part-00000%s … one part per worker, published when all have succeeded\n", s.ID, s.Type, s.Path, s.Ext)
		}
		fmt.Fprintln(stdout, "each worker runs:")
		return p.Plan().WriteText(stdout)
	}
	return usageError{fmt.Sprintf("plan: unknown --format %q with --cluster (known: text, yaml)", format)}
}
