package zflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.opentelemetry.io/otel"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/telemetry"
)

// fanPipeline has a fan-out (trades feeds big, small and raw) and a fan-in
// (both unions big and small), with 2 instances of big and one of every
// other node on any machine (parallelism: auto would give the transforms
// one per CPU).
const fanPipeline = `
version: 1
name: fan
settings:
  batch_rows: 4096
  trace: {exporter: %s, protocol: %s, endpoint: "%s", timeout: %s}
sources:
  trades:
    type: generate
    seed: 7
    rows: %d
    columns:
      - {name: qty, type: int64, min: 1, max: 1000}
      - {name: price, type: float64, min: 1, max: 100}
operators:
  big: {type: filter, inputs: [trades], where: "qty > 500", parallelism: 2}
  small: {type: filter, inputs: [trades], where: "qty <= 10", parallelism: 1}
  both: {type: union, inputs: [big, small], parallelism: 1}
sinks:
  out: {type: discard, inputs: [both]}
  raw: {type: discard, inputs: [trades]}
`

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// jaegerBinary finds the Jaeger v2 binary `make jaeger` builds. Without it
// the test skips, saying so, except in CI (CI=true), where it fails.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("ZFLOW_JAEGER")
	if path == "" {
		path = filepath.Join(repoRoot, ".cache", "jaeger", "jaeger")
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("no Jaeger binary at %s (build it with `make jaeger`, or set ZFLOW_JAEGER): %v", path, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

type jaeger struct {
	grpc, http, query string // host:port
}

// startJaeger starts a real Jaeger v2 (OTLP receiver, memory store, query
// API) on free ports and waits until it is healthy.
func startJaeger(t *testing.T) *jaeger {
	bin := jaegerBinary(t)
	ports := map[string]int{}
	for _, k := range []string{"ZFLOW_JAEGER_QUERY_PORT", "ZFLOW_JAEGER_QUERY_GRPC_PORT", "ZFLOW_JAEGER_HEALTH_PORT", "ZFLOW_JAEGER_OTLP_GRPC_PORT", "ZFLOW_JAEGER_OTLP_HTTP_PORT"} {
		ports[k] = freePort(t)
	}
	cmd := exec.Command(bin, "--config", "file:"+filepath.Join(repoRoot, "telemetry", "testdata", "jaeger.yaml"))
	cmd.Env = os.Environ()
	for k, v := range ports {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", k, v))
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("jaeger output:\n%s", logs.String())
		}
	})
	health := fmt.Sprintf("http://127.0.0.1:%d/status", ports["ZFLOW_JAEGER_HEALTH_PORT"])
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger not healthy after 60 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &jaeger{
		grpc:  fmt.Sprintf("127.0.0.1:%d", ports["ZFLOW_JAEGER_OTLP_GRPC_PORT"]),
		http:  fmt.Sprintf("127.0.0.1:%d", ports["ZFLOW_JAEGER_OTLP_HTTP_PORT"]),
		query: fmt.Sprintf("127.0.0.1:%d", ports["ZFLOW_JAEGER_QUERY_PORT"]),
	}
}

// Jaeger's query API (api/traces), the parts read here.
type jaegerTraces struct {
	Data []struct {
		TraceID string `json:"traceID"`
		Spans   []struct {
			SpanID        string `json:"spanID"`
			OperationName string `json:"operationName"`
			References    []struct {
				RefType string `json:"refType"`
				SpanID  string `json:"spanID"`
			} `json:"references"`
			Tags []struct {
				Key   string `json:"key"`
				Value any    `json:"value"`
			} `json:"tags"`
		} `json:"spans"`
	} `json:"data"`
}

func (j *jaeger) traces(t *testing.T, service string, wantSpans int) jaegerTraces {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got jaegerTraces
		resp, err := http.Get(fmt.Sprintf("http://%s/api/traces?service=%s&limit=10", j.query, service))
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
		}
		n := 0
		for _, tr := range got.Data {
			n += len(tr.Spans)
		}
		if err == nil && n >= wantSpans {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger has %d spans of service %s after 30 s, want %d (last error %v)", n, service, wantSpans, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestOTLPToJaeger(t *testing.T) {
	j := startJaeger(t)
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			service := "zflow-test-" + proto
			t.Setenv("OTEL_SERVICE_NAME", service)
			endpoint := j.grpc
			if proto == "http" {
				endpoint = j.http
			}
			p, err := zflow.Parse([]byte(fmt.Sprintf(fanPipeline, "otlp", proto, endpoint, "10s", 100000)), "fan.yaml")
			if err != nil {
				t.Fatal(err)
			}
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			var logs bytes.Buffer
			sum, err := p.Run(context.Background(), zflow.WithAllocator(mem), zflow.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			if err != nil {
				t.Fatal(err)
			}
			mem.AssertSize(t, 0)
			if logs.Len() > 0 {
				t.Errorf("warnings from a run with a healthy collector:\n%s", logs.String())
			}
			// run + trades + big×2 + small + both + out + raw
			const want = 8
			got := j.traces(t, service, want)
			if len(got.Data) != 1 {
				t.Fatalf("%d traces, want 1", len(got.Data))
			}
			spans := got.Data[0].Spans
			if len(spans) != want {
				var names []string
				for _, s := range spans {
					names = append(names, s.OperationName)
				}
				t.Fatalf("%d spans %v, want %d", len(spans), names, want)
			}
			var runID string
			for _, s := range spans {
				if s.OperationName == "zflow run fan" {
					runID = s.SpanID
				}
			}
			if runID == "" {
				t.Fatal("no run span")
			}
			instances := map[string]int{}
			rows := map[string]float64{}
			for _, s := range spans {
				if s.SpanID == runID {
					continue
				}
				var parent string
				var follows []string
				for _, r := range s.References {
					switch r.RefType {
					case "CHILD_OF":
						parent = r.SpanID
					case "FOLLOWS_FROM": // OTel links
						follows = append(follows, r.SpanID)
					}
				}
				if parent != runID {
					t.Errorf("%s: parent %s, want the run span %s", s.OperationName, parent, runID)
				}
				tags := map[string]any{}
				for _, tg := range s.Tags {
					tags[tg.Key] = tg.Value
				}
				id, _ := tags[string(engine.AttrOperatorID)].(string)
				instances[id]++
				if v, ok := tags[string(engine.AttrRowsOut)].(float64); ok {
					rows[id] += v
				}
				if tags[string(engine.AttrPipeline)] != "fan" || tags[string(engine.AttrOperatorType)] == nil ||
					tags[string(engine.AttrArenaKind)] != "caller" { // WithAllocator above
					t.Errorf("%s: tags %v", s.OperationName, tags)
				}
				wantLinks := map[string]int{"trades": 0, "big": 1, "small": 1, "both": 3, "out": 1, "raw": 1}[id]
				if len(follows) != wantLinks {
					t.Errorf("%s: %d links to producers, want %d", s.OperationName, len(follows), wantLinks)
				}
			}
			if fmt.Sprint(instances) != "map[big:2 both:1 out:1 raw:1 small:1 trades:1]" {
				t.Errorf("instances %v", instances)
			}
			for _, o := range sum.Ops {
				if o.Kind != "sink" && rows[o.ID] != float64(o.RowsOut) {
					t.Errorf("%s: Jaeger says %v rows out, the summary %d", o.ID, rows[o.ID], o.RowsOut)
				}
			}
		})
	}
	goleak.VerifyNone(t, goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"), goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"), goleak.IgnoreAnyFunction("internal/poll.runtime_pollWait"))
}

// lockedBuffer is a log destination safe for the exporter's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// blackhole accepts connections and never answers: a collector that hangs.
func blackhole(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// TestCollectorDown: with the collector down, unreachable or hanging, the
// run succeeds, logs exactly one warning, and returns within the telemetry
// timeout (plus slack for a loaded machine: this is a hang check, not a
// performance figure).
func TestCollectorDown(t *testing.T) {
	const timeout = time.Second
	cases := map[string]string{
		"down":        fmt.Sprintf("127.0.0.1:%d", freePort(t)), // nothing listens
		"unreachable": "192.0.2.1:4317",                         // TEST-NET-1: never routed
		"hanging":     blackhole(t),
	}
	for name, endpoint := range cases {
		for _, proto := range []string{"grpc", "http"} {
			t.Run(name+"/"+proto, func(t *testing.T) {
				p, err := zflow.Parse([]byte(fmt.Sprintf(fanPipeline, "otlp", proto, endpoint, timeout, 50000)), "fan.yaml")
				if err != nil {
					t.Fatal(err)
				}
				var logs lockedBuffer
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				start := time.Now()
				sum, err := p.Run(context.Background(), zflow.WithAllocator(mem), zflow.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
				took := time.Since(start)
				if err != nil {
					t.Fatalf("run failed because the collector is %s: %v", name, err)
				}
				mem.AssertSize(t, 0)
				if sum.Op("raw").RowsIn != 50000 {
					t.Fatalf("raw got %d rows", sum.Op("raw").RowsIn)
				}
				lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
				if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "telemetry not delivered") {
					t.Fatalf("want one warning, got:\n%s", logs.String())
				}
				t.Logf("%s: returned after %v: %s", name, took.Round(time.Millisecond), lines[0])
				if took > timeout+10*time.Second {
					t.Fatalf("run took %v with a %v telemetry timeout: it hung on the collector", took, timeout)
				}
			})
		}
	}
}

// TestPrometheusDuringRun scrapes the Prometheus endpoint with a real HTTP
// GET while a run goes on.
func TestPrometheusDuringRun(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{Metrics: telemetry.MetricConfig{Listen: "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	p, err := zflow.Parse([]byte(fmt.Sprintf(fanPipeline, "none", "grpc", "", "1s", int64(1)<<40)), "fan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	x := p.Start(ctx, zflow.WithAllocator(mem), zflow.WithMeterProvider(tel.MeterProvider()))
	// Each: a metric name and labels its series must carry.
	want := [][]string{
		{"zflow_operator_rows_total", `zflow_operator_id="big"`, `zflow_operator_type="filter"`, `zflow_direction="out"`, `zflow_pipeline_name="fan"`},
		{"zflow_operator_rows_total", `zflow_operator_id="both"`, `zflow_operator_type="union"`, `zflow_direction="in"`},
		{"zflow_operator_batches_total", `zflow_operator_id="trades"`, `zflow_direction="out"`},
		{"zflow_operator_bytes_total", `zflow_operator_id="raw"`, `zflow_direction="in"`},
		{"zflow_operator_bytes_by_reference_total", `zflow_operator_id="both"`},
		{"zflow_operator_bytes_copied_total", `zflow_operator_id="small"`, `zflow_copy_reason="filter compact"`},
		{"zflow_edge_queue_depth", `zflow_edge_from="trades"`, `zflow_edge_to="raw"`, `zflow_pipeline_name="fan"`},
		{"zflow_edge_batch_latency_seconds_bucket", `zflow_edge_from="big"`, `zflow_edge_to="both"`, `le="1e-06"`},
		{"zflow_edge_batch_latency_seconds_count", `zflow_edge_from="small"`, `zflow_edge_to="both"`},
	}
	has := func(body string, w []string) bool {
		for _, line := range strings.Split(body, "\n") {
			if !strings.HasPrefix(line, w[0]+"{") {
				continue
			}
			ok := true
			for _, l := range w[1:] {
				ok = ok && strings.Contains(line, l)
			}
			if ok {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(30 * time.Second)
	var body string
	for {
		resp, err := http.Get("http://" + tel.MetricsAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		var missing []string
		for _, w := range want {
			if !has(body, w) {
				missing = w
			}
		}
		if missing == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s the scrape still lacks %s; it has:\n%s", missing, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case <-x.Done():
		t.Fatal("the run ended before the scrape: the endpoint was not checked during a run")
	default:
	}
	cancel()
	x.Wait()
	mem.AssertSize(t, 0)
}

// TestGlobalsUntouched: a run that sets up its own exporter from the
// pipeline's settings (settings.trace.exporter: stdout) leaves
// OpenTelemetry's global providers and propagator alone.
func TestGlobalsUntouched(t *testing.T) {
	tp0, mp0, prop0 := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator()
	p, err := zflow.Parse([]byte(fmt.Sprintf(fanPipeline, "stdout", "grpc", "", "1s", 1000)), "fan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, w, _ := os.Pipe()
	stdout := os.Stdout
	os.Stdout = w // the stdout exporter's default writer
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	_, err = p.Run(context.Background())
	os.Stdout = stdout
	w.Close()
	spans := <-done
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(spans, []byte(`"Name":"zflow run fan"`)) {
		t.Fatalf("the stdout exporter did not print the run span:\n%.400s", spans)
	}
	if otel.GetTracerProvider() != tp0 || otel.GetMeterProvider() != mp0 || otel.GetTextMapPropagator() != prop0 {
		t.Fatal("a run changed OpenTelemetry's global providers")
	}
}
