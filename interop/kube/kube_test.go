//go:build linux

package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// The cluster the tests share: up once in TestMain, down at the end.
var (
	stateDir   string
	kubeconfig string
	client     kubernetes.Interface
	repo       string
)

const hosts = 3

func TestMain(m *testing.M) {
	if os.Getenv("ZFLOW_KUBE") != "1" {
		fmt.Println("interop/kube: skipped: ZFLOW_KUBE is not 1 (make cluster-test builds Kubernetes and the images, then runs these)")
		os.Exit(m.Run())
	}
	code := func() int {
		var err error
		if repo, err = filepath.Abs("../.."); err != nil {
			fmt.Println(err)
			return 1
		}
		stateDir = os.Getenv("ZK_DIR")
		if stateDir == "" {
			stateDir = "/tmp/zflow-kube"
		}
		defer func() {
			if os.Getenv("ZK_KEEP") == "1" {
				fmt.Println("interop/kube: ZK_KEEP=1: the cluster stays up; interop/kube/cluster.sh down removes it")
				return
			}
			if out, err := cluster("down"); err != nil {
				fmt.Printf("cluster.sh down: %v\n%s", err, out)
			}
		}()
		t0 := time.Now()
		images := filepath.Join(repo, "out/zflow-image.tar") + " " + filepath.Join(repo, "out/pause-image.tar")
		// The nodes carry this machine's facts as labels, as a real
		// cluster's would (zflow topology --labels on each).
		labels, err := exec.Command(filepath.Join(repo, "bin/zflow"), "topology", "--labels").Output()
		if err != nil {
			fmt.Printf("zflow topology --labels: %v\n", err)
			return 1
		}
		out, err := clusterEnv([]string{"ZK_IMAGES=" + images, "ZK_LABELS=" + strings.Join(strings.Fields(string(labels)), ",")}, "up", fmt.Sprint(hosts))
		if err != nil {
			fmt.Printf("cluster.sh up: %v\n%s", err, out)
			dumpLogs()
			return 1
		}
		kubeconfig = filepath.Join(stateDir, "admin.kubeconfig")
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		if client, err = kubernetes.NewForConfig(cfg); err != nil {
			fmt.Println(err)
			return 1
		}
		if err := waitNodes(hosts, 3*time.Minute); err != nil {
			fmt.Println(err)
			dumpLogs()
			return 1
		}
		fmt.Printf("interop/kube: %d nodes Ready %v after cluster.sh up\n", hosts, time.Since(t0).Round(time.Second))
		code := m.Run()
		if code != 0 {
			dumpLogs()
		}
		return code
	}()
	os.Exit(code)
}

func cluster(args ...string) ([]byte, error) { return clusterEnv(nil, args...) }

// needCluster skips a test when TestMain brought up no cluster
// (ZFLOW_KUBE is not 1).
func needCluster(t *testing.T) {
	t.Helper()
	if client == nil {
		t.Skip("ZFLOW_KUBE is not 1: make cluster-test builds Kubernetes and the images, then runs these")
	}
}

func clusterEnv(env []string, args ...string) ([]byte, error) {
	cmd := exec.Command("bash", append([]string{filepath.Join(repo, "interop/kube/cluster.sh")}, args...)...)
	cmd.Env = append(append(os.Environ(), "ZK_DIR="+stateDir, "ZK_BIN="+filepath.Join(repo, ".cache/kube")), env...)
	return cmd.CombinedOutput()
}

// dumpLogs prints the end of each daemon's log, for a failed run.
func dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(stateDir, "logs/*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		fmt.Printf("==> %s (last 15 lines)\n%s\n", l, strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
}

func waitNodes(n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err == nil {
			ready := 0
			var states []string
			for _, nd := range nodes.Items {
				for _, c := range nd.Status.Conditions {
					if c.Type == corev1.NodeReady {
						states = append(states, fmt.Sprintf("%s %s (%s)", nd.Name, c.Status, c.Message))
						if c.Status == corev1.ConditionTrue {
							ready++
						}
					}
				}
			}
			last = strings.Join(states, "; ")
			if ready == n {
				return nil
			}
		} else {
			last = err.Error()
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("interop/kube: %d nodes not Ready after %v: %s", n, limit, last)
}

func zflowBin() string { return filepath.Join(repo, "bin/zflow") }

// zflow runs the zflow binary in dir; the output is stdout and stderr
// together.
func zflow(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(zflowBin(), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// csvInputs writes files CSV files of rows rows each under dir/in.
func csvInputs(t *testing.T, dir string, files, rows int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	for f := range files {
		var b strings.Builder
		b.WriteString("id,symbol,price,qty\n")
		for r := range rows {
			id := f*rows + r
			fmt.Fprintf(&b, "%d,SYM%02d,%d.%02d,%d\n", id, id%17, 10+id%490, id%100, 1+id%1000)
		}
		if err := os.WriteFile(filepath.Join(dir, "in", fmt.Sprintf("trades-%03d.csv", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const csvToParquet = `version: 1
name: csv_to_parquet_many
settings:
  cluster: {workers: %d, host_paths: [%s]}
sources:
  trades: {type: csv, path: in/*.csv}
operators:
  large: {type: filter, inputs: [trades], where: "qty >= 100"}
  enriched: {type: project, inputs: [large], columns: ["*", "price * qty AS notional", "lower(symbol) AS sym"]}
sinks:
  out: {type: parquet, inputs: [enriched], path: out/%s.parquet, compression: zstd}
`

// parquetRows reads every Parquet file at path (a file or a directory of
// parts) into sorted text rows.
func parquetRows(t *testing.T, path string) []string {
	t.Helper()
	files := []string{path}
	if st, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if st.IsDir() {
		files, _ = filepath.Glob(filepath.Join(path, "*.parquet"))
	}
	var rows []string
	for _, f := range files {
		rd, err := file.OpenParquetFile(f, false)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		fr, err := pqarrow.NewFileReader(rd, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := fr.ReadTable(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		tr := array.NewTableReader(tbl, 4096)
		for tr.Next() {
			rec := tr.RecordBatch()
			for i := range int(rec.NumRows()) {
				var cells []string
				for c := range int(rec.NumCols()) {
					cells = append(cells, valueString(rec.Column(c), i))
				}
				rows = append(rows, strings.Join(cells, "|"))
			}
		}
		tr.Release()
		tbl.Release()
		rd.Close()
	}
	slices.Sort(rows)
	return rows
}

func valueString(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "NULL"
	}
	return a.ValueStr(i)
}

// writePipeline writes text to dir/name.yaml and returns its path.
func writePipeline(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCSVToParquetOneAndThreeHosts: the same pipeline over many CSV files
// on one host (zflow run), on one worker and on three workers of the
// cluster: the outputs hold the same rows, and the three workers ran on
// three nodes and left nothing behind.
func TestCSVToParquetOneAndThreeHosts(t *testing.T) {
	needCluster(t)
	dir := t.TempDir()
	csvInputs(t, dir, 12, 2000)
	write := func(name string, workers int) string {
		return writePipeline(t, dir, name, fmt.Sprintf(csvToParquet, workers, dir, name))
	}
	local := write("local", 1)
	if out, err := zflow(t, dir, "run", "--quiet", local); err != nil {
		t.Fatalf("zflow run: %v\n%s", err, out)
	}
	want := parquetRows(t, filepath.Join(dir, "out/local.parquet"))
	if len(want) == 0 {
		t.Fatal("the local run wrote no rows")
	}
	for _, w := range []int{1, hosts} {
		name := fmt.Sprintf("w%d", w)
		p := write(name, w)
		if w == hosts {
			// Bound to NUMA node 0: the workers need nodes labelled with
			// at least one NUMA node (zflow topology --labels), which
			// every node of the test cluster is.
			b, _ := os.ReadFile(p)
			if err := os.WriteFile(p, []byte(strings.Replace(string(b), "settings:\n", "settings:\n  memory: {node: 0}\n", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, err := zflow(t, dir, "run", "--cluster", "kubernetes", "--kubeconfig", kubeconfig, p)
		if err != nil {
			t.Fatalf("%d workers: %v\n%s", w, err, out)
		}
		got := parquetRows(t, filepath.Join(dir, "out", name+".parquet"))
		if !slices.Equal(got, want) {
			t.Fatalf("%d workers: %d rows, one host %d (or other rows)\n%s", w, len(got), len(want), out)
		}
		parts, _ := filepath.Glob(filepath.Join(dir, "out", name+".parquet", "part-*.parquet"))
		if len(parts) != w {
			t.Fatalf("%d workers: %d part files", w, len(parts))
		}
		if w == hosts {
			nodes := map[string]bool{}
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) > 2 && strings.HasPrefix(f[1], "zkh") {
					nodes[f[1]] = true
				}
			}
			if len(nodes) != hosts {
				t.Errorf("the %d workers ran on nodes %v, want %d different ones\n%s", w, nodes, hosts, out)
			}
		}
		t.Logf("%d workers:\n%s", w, out)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "out", ".zflow-stage-*")); len(left) > 0 {
		t.Errorf("staging left behind: %v", left)
	}
	waitNoRunObjects(t)
}

const aggregateAcross = `version: 1
name: per_symbol
settings:
  cluster: {workers: %d, host_paths: [%s]}
sources:
  trades: {type: csv, path: in/*.csv}
operators:
  large: {type: filter, inputs: [trades], where: "qty >= 100"}
  spread: {type: repartition, inputs: [large], by: [symbol], across: hosts}
  per_symbol:
    type: aggregate
    inputs: [spread]
    group_by: [symbol]
    aggregates: {trades: "count(*)", qty: "sum(qty)", first: "min(id)", last: "max(id)", low: "min(price)", high: "max(price)"}
sinks:
  out: {type: parquet, inputs: [per_symbol], path: out/%s.parquet, compression: zstd}
`

// TestAggregateAcrossHostsOneAndThree: an aggregate after a repartition
// across hosts, on one host (zflow run) and on three workers, which send
// each other their rows by symbol over the zflow stream: the same groups
// with the same values, each group in one worker's part.
func TestAggregateAcrossHostsOneAndThree(t *testing.T) {
	needCluster(t)
	dir := t.TempDir()
	csvInputs(t, dir, 12, 2000)
	write := func(name string, workers int) string {
		return writePipeline(t, dir, name, fmt.Sprintf(aggregateAcross, workers, dir, name))
	}
	if out, err := zflow(t, dir, "run", "--quiet", write("local", 1)); err != nil {
		t.Fatalf("zflow run: %v\n%s", err, out)
	}
	want := parquetRows(t, filepath.Join(dir, "out/local.parquet"))
	if len(want) != 17 {
		t.Fatalf("the local run wrote %d groups, want 17", len(want))
	}
	out, err := zflow(t, dir, "run", "--cluster", "kubernetes", "--kubeconfig", kubeconfig, write("w3", hosts))
	if err != nil {
		t.Fatalf("%d workers: %v\n%s", hosts, err, out)
	}
	got := parquetRows(t, filepath.Join(dir, "out/w3.parquet"))
	if !slices.Equal(got, want) {
		t.Fatalf("%d workers:\n%s\none host:\n%s\n%s", hosts, strings.Join(got, "\n"), strings.Join(want, "\n"), out)
	}
	if !strings.Contains(out, "exchange stage: epoch 1: 3 workers") || !strings.Contains(out, "every worker is done") {
		t.Errorf("the coordinator did not drive the exchange stage:\n%s", out)
	}
	t.Logf("%d workers:\n%s", hosts, out)
	if left, _ := filepath.Glob(filepath.Join(dir, "out", ".zflow-stage-*")); len(left) > 0 {
		t.Errorf("staging left behind: %v", left)
	}
	waitNoRunObjects(t)
}

// waitNoRunObjects waits until no Job, pod or ConfigMap of any zflow run
// is left (the coordinator deleted the Job; the garbage collector
// follows its owner references).
func waitNoRunObjects(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: "zflow.dev/run"}
	deadline := time.Now().Add(time.Minute)
	for {
		jobs, err1 := client.BatchV1().Jobs("default").List(ctx, sel)
		pods, err2 := client.CoreV1().Pods("default").List(ctx, sel)
		cms, err3 := client.CoreV1().ConfigMaps("default").List(ctx, sel)
		if err1 == nil && err2 == nil && err3 == nil && len(jobs.Items)+len(pods.Items)+len(cms.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the run: %d jobs, %d pods, %d configmaps of zflow runs left (%v %v %v)",
				len(jobs.Items), len(pods.Items), len(cms.Items), err1, err2, err3)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestPlanYAMLServerDryRun: the objects zflow plan --cluster kubernetes
// --format yaml prints are accepted by the API server's server-side dry
// run, and create nothing.
func TestPlanYAMLServerDryRun(t *testing.T) {
	needCluster(t)
	dir := t.TempDir()
	csvInputs(t, dir, 2, 10)
	p := filepath.Join(dir, "p.yaml")
	src := strings.Replace(fmt.Sprintf(csvToParquet, 3, dir, "x"), "settings:\n", "settings:\n  pin: true\n  threads: 1\n  memory: {arena: hugepage, node: 0}\n", 1)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(zflowBin(), "plan", "--cluster", "kubernetes", "--format", "yaml", p)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zflow plan: %v\n%s", err, stderr.Bytes())
	}
	docs := bytes.Split(out, []byte("\n---\n"))
	if len(docs) != 2 {
		t.Fatalf("%d YAML documents, want a Job and a ConfigMap:\n%s", len(docs), out)
	}
	var job batchv1.Job
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(docs[0], &job); err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(docs[1], &cm); err != nil {
		t.Fatal(err)
	}
	res := job.Spec.Template.Spec.Containers[0].Resources
	if q := res.Requests["hugepages-2Mi"]; q.IsZero() {
		t.Errorf("memory.arena hugepage asks for no hugepages-2Mi: %v", res.Requests)
	}
	if c, l := res.Requests[corev1.ResourceCPU], res.Limits[corev1.ResourceCPU]; c.String() != "1" || !c.Equal(l) {
		t.Errorf("pin: true asks for cpu %v (limit %v), want one whole CPU with requests = limits", c.String(), l.String())
	}
	na := job.Spec.Template.Spec.Affinity.NodeAffinity
	if na == nil || len(na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms) != 1 ||
		na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Key != "zflow.dev/numa-nodes" {
		t.Errorf("memory bound to node 0 asks for no node with a NUMA node 0: %+v", na)
	}
	ctx := context.Background()
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	if _, err := client.BatchV1().Jobs(job.Namespace).Create(ctx, &job, dry); err != nil {
		t.Fatalf("the API server refused the Job: %v", err)
	}
	if _, err := client.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, &cm, dry); err != nil {
		t.Fatalf("the API server refused the ConfigMap: %v", err)
	}
	if _, err := client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("the dry run created the Job")
	}
	// kubectl, where the machine has it, says the same.
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		cmd := exec.Command(kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-f", "-")
		cmd.Stdin = bytes.NewReader(out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("kubectl apply --dry-run=server: %v\n%s", err, b)
		} else {
			t.Logf("kubectl apply --dry-run=server:\n%s", b)
		}
	}
}

const generated = `version: 1
name: generated_trades
settings:
  cluster: {workers: 3, host_paths: [%s]}
sources:
  trades:
    type: generate
    seed: 7
    rows: %d
    columns:
      - {name: id, type: int64, min: 0, max: 1000000000}
      - {name: symbol, type: string, cardinality: 50, prefix: SYM}
      - {name: price, type: float64, min: 10, max: 500}
      - {name: qty, type: int64, min: 1, max: 1000}
operators:
  notional: {type: project, inputs: [trades], columns: ["*", "price * qty AS notional"]}
sinks:
  out: {type: parquet, inputs: [notional], path: out/%s.parquet, compression: zstd, compression_level: 9}
`

// generatedAgg follows generated: the rows per symbol, after the workers
// exchanged them by symbol.
const generatedAgg = `  spread: {type: repartition, inputs: [notional], by: [symbol], across: hosts}
  per_symbol:
    type: aggregate
    inputs: [spread]
    group_by: [symbol]
    aggregates: {trades: "count(*)", qty: "sum(qty)", first: "min(id)", last: "max(id)"}
`

// digest is a checksum of the rows of the Parquet files at path that does
// not depend on their order or on how they are split into files: the row
// count and the sum of a hash of each row.
func digest(t *testing.T, path string) (int, uint64) {
	t.Helper()
	rows := parquetRows(t, path)
	var sum uint64
	for _, r := range rows {
		h := uint64(14695981039346656037)
		for i := range len(r) {
			h = (h ^ uint64(r[i])) * 1099511628211
		}
		sum += h
	}
	return len(rows), sum
}

// TestWorkerPodDeleted: ten runs on three workers, each with one worker's
// pod deleted at a random moment. Every run ends with exactly the rows of
// a run that lost nothing, or fails cleanly, saying why, with nothing
// published; no run leaves a staging directory or a Kubernetes object.
func TestWorkerPodDeleted(t *testing.T) {
	needCluster(t)
	const rows = 600_000
	dir := t.TempDir()
	// Even trials run the generated rows into Parquet (each worker on its
	// own); odd ones aggregate them after a repartition across hosts (the
	// workers exchange rows, so a lost pod re-runs the exchange stage).
	write := func(name string, kind int) string {
		p := filepath.Join(dir, name+".yaml")
		text := fmt.Sprintf(generated, dir, rows, name)
		if kind == 1 {
			text = strings.Replace(text, "sinks:\n", generatedAgg+"sinks:\n", 1)
			text = strings.Replace(text, "inputs: [notional], path:", "inputs: [per_symbol], path:", 1)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var refTime [2]time.Duration
	var wantN [2]int
	var wantSum [2]uint64
	for kind := range 2 {
		name := fmt.Sprintf("reference%d", kind)
		t0 := time.Now()
		if out, err := zflow(t, dir, "run", "--cluster", "kubernetes", "--kubeconfig", kubeconfig, write(name, kind)); err != nil {
			t.Fatalf("the reference run: %v\n%s", err, out)
		}
		refTime[kind] = time.Since(t0)
		wantN[kind], wantSum[kind] = digest(t, filepath.Join(dir, "out", name+".parquet"))
		if want := []int{rows, 50}[kind]; wantN[kind] != want {
			t.Fatalf("reference run %d wrote %d rows, want %d", kind, wantN[kind], want)
		}
		waitNoRunObjects(t)
		t.Logf("reference run %d: %v", kind, refTime[kind].Round(time.Millisecond))
	}

	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	t.Logf("trials seeded with %d", seed)
	ctx := context.Background()
	var exact, failed int
	for trial := range 10 {
		name, kind := fmt.Sprintf("trial%d", trial), trial%2
		cmd := exec.Command(zflowBin(), "run", "--cluster", "kubernetes", "--kubeconfig", kubeconfig, write(name, kind))
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		delay := time.Duration(rng.Int64N(int64(refTime[kind])))
		victim := rng.IntN(3)
		deleted := "nothing (no pod of that worker was running or pending)"
		select {
		case err := <-done:
			done <- err
		case <-time.After(delay):
			pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{
				LabelSelector: fmt.Sprintf("zflow.dev/run,batch.kubernetes.io/job-completion-index=%d", victim)})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pods.Items {
				if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil {
					continue
				}
				// At once (no grace period): the worker is killed wherever
				// it is, as a node lost would.
				zero := int64(0)
				if err := client.CoreV1().Pods("default").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err == nil {
					deleted = fmt.Sprintf("pod %s (worker %d, %s)", p.Name, victim, p.Status.Phase)
				}
				break
			}
		}
		err := <-done
		path := filepath.Join(dir, "out", name+".parquet")
		if err == nil {
			n, sum := digest(t, path)
			if n != wantN[kind] || sum != wantSum[kind] {
				t.Fatalf("trial %d (deleted %s after %v): %d rows, checksum %x; want %d rows, %x\n%s",
					trial, deleted, delay, n, sum, wantN[kind], wantSum[kind], out.String())
			}
			exact++
			pods := "?"
			if m := regexp.MustCompile(`(\d+) pods ran`).FindStringSubmatch(out.String()); m != nil {
				pods = m[1]
			}
			t.Logf("trial %d: deleted %s after %v: exact output, %s pods ran", trial, deleted, delay.Round(time.Millisecond), pods)
		} else {
			if _, serr := os.Stat(path); serr == nil {
				t.Fatalf("trial %d failed but published %s:\n%s", trial, path, out.String())
			}
			if !strings.Contains(out.String(), "zflow: cluster:") {
				t.Fatalf("trial %d failed without saying why:\n%s", trial, out.String())
			}
			failed++
			t.Logf("trial %d: deleted %s after %v: failed cleanly:\n%s", trial, deleted, delay.Round(time.Millisecond), out.String())
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "out", ".zflow-stage-*")); len(left) > 0 {
			t.Fatalf("trial %d left staging: %v", trial, left)
		}
		waitNoRunObjects(t)
	}
	t.Logf("%d trials with the exact output, %d clean failures", exact, failed)
}

// TestCoordinatorKilled: the coordinator (zflow run --cluster) is killed
// with SIGKILL while its workers run. Nothing is published; every worker
// sees its control connection end, removes what it staged and exits with
// the code the Job's pod failure policy turns into the Job's failure; the
// TTL controller then deletes the Job, and the garbage collector its pods
// and ConfigMap by their owner references: nothing is left.
func TestCoordinatorKilled(t *testing.T) {
	needCluster(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "p.yaml")
	text := strings.Replace(fmt.Sprintf(generated, dir, 3_000_000, "killed"), "workers: 3,", "workers: 3, ttl: 1m,", 1)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(zflowBin(), "run", "--cluster", "kubernetes", "--kubeconfig", kubeconfig, p)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: "zflow.dev/run"}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pods, err := client.CoreV1().Pods("default").List(ctx, sel)
		running := 0
		if err == nil {
			for _, p := range pods.Items {
				if p.Status.Phase == corev1.PodRunning {
					running++
				}
			}
		}
		if running == 3 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the workers never all ran:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the coordinator has connected to them
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	t0 := time.Now()
	failDeadline, goneDeadline := t0.Add(time.Minute), t0.Add(3*time.Minute) // bounds on waiting, not timings under test
	// The Job fails: its workers exit with cluster.ExitCoordinatorLost.
	var failedAfter time.Duration
	for failedAfter == 0 {
		jobs, err := client.BatchV1().Jobs("default").List(ctx, sel)
		if err == nil && len(jobs.Items) == 1 {
			for _, c := range jobs.Items[0].Status.Conditions {
				if c.Type == "Failed" && c.Status == corev1.ConditionTrue {
					failedAfter = time.Since(t0)
					t.Logf("job %s failed %v after the coordinator was killed: %s: %s", jobs.Items[0].Name, failedAfter.Round(time.Millisecond), c.Reason, c.Message)
				}
			}
		}
		if failedAfter == 0 && time.Now().After(failDeadline) {
			t.Fatalf("the job did not fail within a minute of the coordinator's death (%v)\n%s", err, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "out/killed.parquet")); err == nil {
		t.Fatal("output was published without a coordinator")
	}
	// ttl: 1m, then the garbage collector.
	for {
		jobs, err1 := client.BatchV1().Jobs("default").List(ctx, sel)
		pods, err2 := client.CoreV1().Pods("default").List(ctx, sel)
		cms, err3 := client.CoreV1().ConfigMaps("default").List(ctx, sel)
		if err1 == nil && err2 == nil && err3 == nil && len(jobs.Items)+len(pods.Items)+len(cms.Items) == 0 {
			break
		}
		if time.Now().After(goneDeadline) {
			t.Fatalf("3 minutes after the coordinator's death: %d jobs, %d pods, %d configmaps left", len(jobs.Items), len(pods.Items), len(cms.Items))
		}
		time.Sleep(time.Second)
	}
	t.Logf("nothing of the run left %v after the coordinator was killed", time.Since(t0).Round(time.Second))
	if left, _ := filepath.Glob(filepath.Join(dir, "out", ".zflow-stage-*")); len(left) > 0 {
		t.Errorf("staging left behind: %v", left)
	}
}

// otlpLine is the part of an OTLP/JSON trace file line the test reads.
type otlpLine struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []struct {
				Key   string `json:"key"`
				Value struct {
					String string `json:"stringValue"`
				} `json:"value"`
			} `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Spans []struct {
				TraceID      string `json:"traceId"`
				SpanID       string `json:"spanId"`
				ParentSpanID string `json:"parentSpanId"`
				Name         string `json:"name"`
			} `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

// TestOneTraceAcrossPods: with --trace-file, the coordinator's span and
// the run spans of the three workers (each from its own pod) are one
// trace in the one file: every worker's run span is a child of the
// coordinator's, and its operator spans children of its run span.
func TestOneTraceAcrossPods(t *testing.T) {
	needCluster(t)
	dir := t.TempDir()
	csvInputs(t, dir, 6, 500)
	p := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(csvToParquet, hosts, dir, "traced")), 0o644); err != nil {
		t.Fatal(err)
	}
	traces := filepath.Join(dir, "trace.json")
	if out, err := zflow(t, dir, "run", "--cluster", "kubernetes", "--kubeconfig", kubeconfig, "--trace-file", traces, p); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, err := os.ReadFile(traces)
	if err != nil {
		t.Fatal(err)
	}
	type span struct{ trace, id, parent, name, pod string }
	var spans []span
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var l otlpLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("a line of the trace file: %v", err)
		}
		for _, rs := range l.ResourceSpans {
			pod := ""
			for _, a := range rs.Resource.Attributes {
				if a.Key == "k8s.pod.name" {
					pod = a.Value.String
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spans = append(spans, span{s.TraceID, s.SpanID, s.ParentSpanID, s.Name, pod})
				}
			}
		}
	}
	var root span
	for _, s := range spans {
		if strings.HasPrefix(s.name, "zflow cluster run ") {
			root = s
		}
	}
	if root.id == "" || root.parent != "" {
		t.Fatalf("no coordinator root span among %d spans", len(spans))
	}
	runs := map[string]string{} // pod -> run span id
	for _, s := range spans {
		if s.trace != root.trace {
			t.Errorf("span %q of pod %q is in trace %s, not the coordinator's %s", s.name, s.pod, s.trace, root.trace)
		}
		if strings.HasPrefix(s.name, "zflow run ") {
			if s.parent != root.id || s.pod == "" {
				t.Errorf("worker run span %q of pod %q: parent %s, want the coordinator's %s", s.name, s.pod, s.parent, root.id)
			}
			runs[s.pod] = s.id
		}
	}
	if len(runs) != hosts {
		t.Fatalf("%d worker run spans from pods %v, want %d", len(runs), runs, hosts)
	}
	ops := 0
	for _, s := range spans {
		if s.pod != "" && !strings.HasPrefix(s.name, "zflow run ") {
			if s.parent != runs[s.pod] {
				t.Errorf("span %q of pod %s is not under its worker's run span", s.name, s.pod)
			}
			ops++
		}
	}
	if ops == 0 {
		t.Error("no operator spans from the workers")
	}
	t.Logf("one trace %s: the coordinator's span, %d worker run spans, %d operator spans", root.trace, len(runs), ops)
	if left, _ := filepath.Glob(filepath.Join(dir, ".zflow-traces-*")); len(left) > 0 {
		t.Errorf("the workers' trace files were left: %v", left)
	}
	waitNoRunObjects(t)
}
