package engine

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zflowdev/zflow/topology"
)

// TestMain compiles every test's plan as on a machine of one CPU, so that
// `parallelism: auto` (a zero Node.Parallelism) means one instance and the
// tests say the same on any machine; the tests of auto set their own.
func TestMain(m *testing.M) {
	readCPUBudget = func() topology.CPUBudget { return topology.CPUBudget{Affinity: 1, GOMAXPROCS: 1, N: 1} }
	os.Exit(m.Run())
}

// withCPUs makes Compile see a machine of n CPUs for the rest of the test.
func withCPUs(t *testing.T, n int) {
	old := readCPUBudget
	readCPUBudget = func() topology.CPUBudget { return topology.CPUBudget{Affinity: n, GOMAXPROCS: n, N: n} }
	t.Cleanup(func() { readCPUBudget = old })
}

func TestAutoParallelism(t *testing.T) {
	withCPUs(t, 4)
	for _, tc := range []struct {
		name      string
		threads   int
		unordered bool   // on every node
		want      string // instances of src, a, b, u, s1, s2 (fanGraph)
	}{
		{"auto", 0, false, "src:1 a:2 b:4 u:4 s1:1 s2:1"},
		{"threads 3", 3, false, "src:1 a:2 b:3 u:3 s1:1 s2:1"},
		{"threads above the CPUs", 16, false, "src:1 a:2 b:4 u:4 s1:1 s2:1"},
		{"threads 1", 1, false, "src:1 a:2 b:1 u:1 s1:1 s2:1"},
		{"small batches", -1, false, "src:1 a:2 b:1 u:1 s1:1 s2:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := fanGraph(&collectConfig{}, &collectConfig{}, &passConfig{})
			g.Settings.Threads = max(tc.threads, 0)
			if tc.threads < 0 {
				g.Settings.BatchRows = 1024
			}
			p := mustCompile(t, g)
			var got []string
			for _, n := range p.Describe().Nodes {
				got = append(got, n.ID+":"+itoa(n.Parallelism))
			}
			if s := strings.Join(got, " "); s != tc.want {
				t.Errorf("instances %s, want %s", s, tc.want)
			}
		})
	}
}

func TestAutoParallelismSources(t *testing.T) {
	withCPUs(t, 4)
	for _, tc := range []struct {
		unordered bool
		want      int
		why       string
	}{
		{false, 1, "auto: one instance keeps the source's order (ordered: false would split its work over 4)"},
		{true, 4, "auto with ordered: false: 4 CPUs"},
	} {
		g := &Graph{Name: "src", Nodes: []*Node{
			{ID: "src", Kind: KindSource, Type: "pseq", Unordered: tc.unordered},
			{ID: "out", Kind: KindSink, Type: "collect", Config: &collectConfig{}, Inputs: []string{"src"}},
		}}
		n := mustCompile(t, g).Describe().Nodes[0]
		if n.Parallelism != tc.want || !strings.HasPrefix(n.ParallelismWhy, tc.why) {
			t.Errorf("unordered %v: ×%d (%s), want ×%d (%s…)", tc.unordered, n.Parallelism, n.ParallelismWhy, tc.want, tc.why)
		}
	}
}

// TestAutoParallelismRun runs a transform that auto made four instances of
// (each batch taking a different time) and checks the sink sees every batch
// in the source's order, the plan says why, and nothing is left behind.
func TestAutoParallelismRun(t *testing.T) {
	withCPUs(t, 4)
	mem := newCountingAlloc()
	out := &collectConfig{}
	g := &Graph{Name: "auto", Nodes: []*Node{
		{ID: "src", Kind: KindSource, Type: "seq", Config: &seqConfig{Batches: 40, Rows: 10}},
		{ID: "p", Kind: KindTransform, Type: "pass", Config: &passConfig{Sleep: 200 * time.Microsecond}, Inputs: []string{"src"}},
		{ID: "out", Kind: KindSink, Type: "collect", Config: out, Inputs: []string{"p"}},
	}}
	p := mustCompile(t, g)
	var text strings.Builder
	if err := p.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "threads: 4 CPUs (affinity 4, no cgroup quota, GOMAXPROCS 4)") ||
		!strings.Contains(text.String(), "[transform pass ×4 ordered]") {
		t.Errorf("plan:\n%s", text.String())
	}
	sum, err := p.Run(context.Background(), RunOptions{Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t, mem)
	if len(out.got) != 40 || sum.Op("p").Instances != 4 {
		t.Fatalf("%d batches through %d instances", len(out.got), sum.Op("p").Instances)
	}
	for i, v := range out.got {
		if v != int64(i*10) {
			t.Fatalf("batch %d starts at %d: out of order %v", i, v, out.got)
		}
	}
}

func TestThreadsRefused(t *testing.T) {
	g := fanGraph(&collectConfig{}, &collectConfig{}, &passConfig{})
	g.Settings.Threads = -2
	_, err := Compile(g, CompileOptions{Registry: testRegistry()})
	if err == nil || !strings.Contains(err.Error(), "threads must be ≥ 1") {
		t.Fatalf("threads -2: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
