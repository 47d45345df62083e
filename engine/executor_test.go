package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func linear(seq *seqConfig, pass *passConfig, sink *collectConfig, par int, unordered bool) *Graph {
	return &Graph{Name: "t", Settings: Settings{EdgeCapacity: 2}, Nodes: []*Node{
		{ID: "src", Kind: KindSource, Type: "seq", Config: seq},
		{ID: "p", Kind: KindTransform, Type: "pass", Config: pass, Inputs: []string{"src"}, Parallelism: par, Unordered: unordered},
		{ID: "out", Kind: KindSink, Type: "collect", Config: sink, Inputs: []string{"p"}},
	}}
}

func TestRunLinear(t *testing.T) {
	mem := newCountingAlloc()
	sink := &collectConfig{}
	p := mustCompile(t, linear(&seqConfig{Batches: 20, Rows: 50}, &passConfig{}, sink, 1, false))
	sum, err := p.Run(context.Background(), RunOptions{Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	if sink.rows != 1000 || sink.state != "committed" {
		t.Fatalf("rows %d state %q", sink.rows, sink.state)
	}
	src, pass := sum.Op("src"), sum.Op("p")
	if src.RowsOut != 1000 || src.BatchesOut != 20 || pass.RowsIn != 1000 || pass.RowsOut != 1000 {
		t.Fatalf("stats: %+v %+v", src, pass)
	}
	// A pass-through shares every buffer: all its output is by reference.
	if pass.BytesRef != pass.BytesOut || pass.BytesOut == 0 || pass.BytesNew != 0 {
		t.Fatalf("pass: out %d ref %d new %d", pass.BytesOut, pass.BytesRef, pass.BytesNew)
	}
	if src.BytesNew != src.BytesOut {
		t.Fatalf("source bytes created %d, out %d", src.BytesNew, src.BytesOut)
	}
	checkNoLeaks(t, mem)
}

func TestRunParallelOrdered(t *testing.T) {
	for _, unordered := range []bool{false, true} {
		mem := newCountingAlloc()
		sink := &collectConfig{}
		pass := &passConfig{Sleep: 200 * time.Microsecond}
		p := mustCompile(t, linear(&seqConfig{Batches: 60, Rows: 10}, pass, sink, 4, unordered))
		if _, err := p.Run(context.Background(), RunOptions{Alloc: mem}); err != nil {
			t.Fatal(err)
		}
		if len(sink.got) != 60 {
			t.Fatalf("got %d batches", len(sink.got))
		}
		sorted := slices.IsSorted(sink.got)
		if !unordered && !sorted {
			t.Fatalf("ordered parallel run reordered batches: %v", sink.got)
		}
		got := slices.Clone(sink.got)
		slices.Sort(got)
		for i, v := range got {
			if v != int64(i*10) {
				t.Fatalf("batch %d starts at %d", i, v)
			}
		}
		checkNoLeaks(t, mem)
	}
}

func TestFanOutFanIn(t *testing.T) {
	// src fans out to a and b; u unions a and b; sinks s1 (on u) and s2 (on src).
	run := func(withSecondSink bool) (int64, *collectConfig, *collectConfig) {
		mem := newCountingAlloc()
		s1, s2 := &collectConfig{}, &collectConfig{}
		g := &Graph{Name: "fan", Nodes: []*Node{
			{ID: "src", Kind: KindSource, Type: "seq", Config: &seqConfig{Batches: 16, Rows: 1000}},
			{ID: "a", Kind: KindTransform, Type: "pass", Inputs: []string{"src"}},
			{ID: "b", Kind: KindTransform, Type: "pass", Inputs: []string{"src"}},
			{ID: "u", Kind: KindTransform, Type: "pass", Inputs: []string{"a", "b"}},
			{ID: "s1", Kind: KindSink, Type: "collect", Config: s1, Inputs: []string{"u"}},
		}}
		if withSecondSink {
			g.Nodes = append(g.Nodes, &Node{ID: "s2", Kind: KindSink, Type: "collect", Config: s2, Inputs: []string{"src"}})
		}
		p := mustCompile(t, g)
		if _, err := p.Run(context.Background(), RunOptions{Alloc: mem}); err != nil {
			t.Fatal(err)
		}
		checkNoLeaks(t, mem)
		return mem.total.Load(), s1, s2
	}
	one, s1, _ := run(false)
	two, s1b, s2 := run(true)
	if s1.rows != 32000 || s1b.rows != 32000 || s2.rows != 16000 {
		t.Fatalf("rows: %d %d %d", s1.rows, s1b.rows, s2.rows)
	}
	// Fan-out retains; it never copies: adding a consumer allocates nothing.
	if one != two {
		t.Fatalf("fan-out allocated payload: %d bytes with one sink, %d with two", one, two)
	}
}

func TestErrorCancelsGraph(t *testing.T) {
	mem := newCountingAlloc()
	sink := &collectConfig{}
	p := mustCompile(t, linear(&seqConfig{Batches: 1000, Rows: 10}, &passConfig{FailAt: 5}, sink, 1, false))
	_, err := p.Run(context.Background(), RunOptions{Alloc: mem})
	var oe *OpError
	if !errors.As(err, &oe) || oe.Op != "p" || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("want OpError from p, got %v", err)
	}
	if sink.state != "aborted" {
		t.Fatalf("sink state %q, want aborted", sink.state)
	}
	checkNoLeaks(t, mem)
}

func TestCancelContext(t *testing.T) {
	mem := newCountingAlloc()
	sink := &collectConfig{}
	ctx, cancel := context.WithCancel(context.Background())
	p := mustCompile(t, linear(&seqConfig{Batches: 1 << 30, Rows: 10}, &passConfig{}, sink, 2, false))
	x := p.Start(ctx, RunOptions{Alloc: mem})
	time.Sleep(20 * time.Millisecond)
	cancel()
	_, err := x.Wait()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if sink.state != "aborted" {
		t.Fatalf("sink state %q, want aborted", sink.state)
	}
	checkNoLeaks(t, mem)
}

func TestStopPropagatesUpstream(t *testing.T) {
	mem := newCountingAlloc()
	sink := &collectConfig{}
	seq := &seqConfig{Batches: 1 << 30, Rows: 10, Produced: &atomic.Int64{}}
	p := mustCompile(t, linear(seq, &passConfig{Stop: 3}, sink, 1, false))
	if _, err := p.Run(context.Background(), RunOptions{Alloc: mem}); err != nil {
		t.Fatal(err)
	}
	if sink.rows != 30 || sink.state != "committed" {
		t.Fatalf("rows %d state %s", sink.rows, sink.state)
	}
	if n := seq.Produced.Load(); n > 3+2*2+2 {
		t.Fatalf("source produced %d batches after the consumer stopped at 3", n)
	}
	checkNoLeaks(t, mem)
}

func TestBackpressure(t *testing.T) {
	mem := newCountingAlloc()
	seq := &seqConfig{Batches: 40, Rows: 10, Produced: &atomic.Int64{}}
	sink := &collectConfig{Sleep: 2 * time.Millisecond}
	p := mustCompile(t, linear(seq, &passConfig{}, sink, 1, false))
	x := p.Start(context.Background(), RunOptions{Alloc: mem})
	time.Sleep(15 * time.Millisecond)
	// Two edges of capacity 2, plus one batch in each of the three operators.
	if n, c := seq.Produced.Load(), func() int64 { sink.mu.Lock(); defer sink.mu.Unlock(); return int64(len(sink.got)) }(); n-c > 2+2+3 {
		t.Fatalf("source ran %d batches ahead of the sink", n-c)
	}
	sum, err := x.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := sum.Op("out").RowsIn; got != 400 {
		t.Fatalf("sink got %d rows, want 400", got)
	}
	checkNoLeaks(t, mem)
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name  string
		nodes []*Node
		want  []string
	}{
		{"dangling", []*Node{
			{ID: "src", Kind: KindSource, Type: "seq"},
			{ID: "out", Kind: KindSink, Type: "collect", Inputs: []string{"scr"}},
		}, []string{`out.inputs.0: input "scr" does not exist, did you mean "src"?`, `src: the output of source "src" is not used`}},
		{"cycle", []*Node{
			{ID: "src", Kind: KindSource, Type: "seq"},
			{ID: "a", Kind: KindTransform, Type: "pass", Inputs: []string{"src", "b"}},
			{ID: "b", Kind: KindTransform, Type: "pass", Inputs: []string{"a"}},
			{ID: "out", Kind: KindSink, Type: "collect", Inputs: []string{"b"}},
		}, []string{"cycle: "}},
		{"duplicate", []*Node{
			{ID: "src", Kind: KindSource, Type: "seq"},
			{ID: "src", Kind: KindSink, Type: "collect", Inputs: []string{"src"}},
		}, []string{`duplicate id "src"`}},
		{"unknown type", []*Node{
			{ID: "src", Kind: KindSource, Type: "seqq"},
		}, []string{`src.type: unknown source type "seqq", did you mean "seq"? (known: pseq, seq, sseq)`}},
		{"parallel stateful", []*Node{
			{ID: "src", Kind: KindSource, Type: "seq"},
			{ID: "out", Kind: KindSink, Type: "collect", Inputs: []string{"src"}, Parallelism: 2},
		}, []string{`cannot run with parallelism 2`}},
		{"schema", []*Node{
			{ID: "src", Kind: KindSource, Type: "seq"},
			{ID: "out", Kind: KindSink, Type: "collect"},
		}, []string{"needs at least 1 input"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compile(&Graph{Name: c.name, Nodes: c.nodes}, CompileOptions{Registry: testRegistry()})
			if err == nil {
				t.Fatal("compiled")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestPlanFormats(t *testing.T) {
	p := mustCompile(t, linear(&seqConfig{}, &passConfig{}, &collectConfig{}, 2, true))
	var b strings.Builder
	if err := p.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`pipeline "t": 3 nodes`, "p  [transform pass ×2 unordered] ← src", "schema: n int64"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("text plan lacks %q:\n%s", w, b.String())
		}
	}
	b.Reset()
	_ = p.WriteDOT(&b)
	if !strings.Contains(b.String(), `"src" -> "p";`) {
		t.Errorf("dot: %s", b.String())
	}
	b.Reset()
	_ = p.WriteJSON(&b)
	if !strings.Contains(b.String(), `"parallelism": 2`) {
		t.Errorf("json: %s", b.String())
	}
}
