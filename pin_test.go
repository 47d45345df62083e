//go:build linux

package zflow_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators"
	"github.com/zflowdev/zflow/topology"
)

// affinitySink records the CPU mask of the thread each Write runs on.
type affinitySink struct {
	mu   *sync.Mutex
	seen *[][]int
}

func (s affinitySink) Write(context.Context, int, arrow.RecordBatch) error {
	cpus, err := topology.ThreadAffinity()
	if err != nil {
		return err
	}
	s.mu.Lock()
	*s.seen = append(*s.seen, cpus)
	s.mu.Unlock()
	return nil
}
func (affinitySink) Close(context.Context) error { return nil }
func (affinitySink) Commit() error               { return nil }
func (affinitySink) Abort()                      {}

type affinityFactory struct{ s affinitySink }

func (affinityFactory) Schema() *arrow.Schema                      { return nil }
func (f affinityFactory) New(*engine.InstanceContext) (any, error) { return f.s, nil }

// TestPin: with settings.pin, an operator's thread runs on the CPUs of the
// chosen node (node 0 here: the only one); without it, on every CPU. A node
// that does not exist degrades to unpinned with the reason logged.
func TestPin(t *testing.T) {
	m, err := topology.Read(topology.Host())
	if err != nil {
		t.Fatal(err)
	}
	node0, err := m.CPUsOfNode(0)
	if err != nil {
		t.Skipf("node 0 has no CPUs here: %v", err)
	}
	var mu sync.Mutex
	var seen [][]int
	reg := engine.NewRegistry()
	reg.MustRegister(operators.GenerateSpec())
	reg.MustRegister(engine.Spec{Name: "affinity", Kind: engine.KindSink, MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &struct{}{} },
		Build: func(*engine.BuildContext, any) (engine.Factory, error) {
			return affinityFactory{affinitySink{&mu, &seen}}, nil
		}})
	run := func(settings string) string {
		seen = nil
		src := fmt.Sprintf(`version: 1
name: pin
settings: {%s}
sources:
  gen: {type: generate, rows: 3000, batch_rows: 1000, columns: [{name: a, type: int64}]}
sinks:
  out: {type: affinity, inputs: [gen]}
`, settings)
		p, err := zflow.Parse([]byte(src), "pin.yaml", zflow.WithRegistry(reg))
		if err != nil {
			t.Fatal(err)
		}
		var logs lockedBuffer
		if _, err := p.Run(context.Background(), zflow.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 3 {
			t.Fatalf("sink saw %d batches", len(seen))
		}
		return logs.String()
	}
	logs := run("pin: true, memory: {node: 0}")
	for _, cpus := range seen {
		if !slices.Equal(cpus, node0) {
			t.Fatalf("pinned to node 0 but the sink ran on CPUs %v (node 0: %v)", cpus, node0)
		}
	}
	if !strings.Contains(logs, `pin: operator \"out\" on node 0`) {
		t.Errorf("no pin log line:\n%s", logs)
	}
	if runtime.NumCPU() > len(node0) {
		run("pin: false")
		for _, cpus := range seen {
			if len(cpus) == len(node0) {
				t.Errorf("unpinned run ran on %v", cpus)
			}
		}
	}
	if len(m.Nodes) == 1 {
		logs = run("pin: true, memory: {node: 7, arena: thp}")
		if !strings.Contains(logs, `runs unpinned`) || !strings.Contains(logs, "node 7") {
			t.Errorf("pinning to a missing node: no reason logged:\n%s", logs)
		}
	}
}
