package engine

import (
	"strings"
	"testing"

	"github.com/zflowdev/zflow/buffers"
)

// TestCompileMemoryChecks: the Go path gets the memory checks a pipeline
// file gets at its positions: kinds this build has, a path only for kinds
// that map a file, budgets that make sense.
func TestCompileMemoryChecks(t *testing.T) {
	graph := func(s buffers.PoolConfig, node *buffers.PoolConfig) *Graph {
		g := linear(&seqConfig{Batches: 1, Rows: 1}, &passConfig{}, &collectConfig{}, 1, false)
		g.Settings.Memory = s
		g.Nodes[1].Memory = node
		return g
	}
	for _, c := range []struct {
		name     string
		settings buffers.PoolConfig
		node     *buffers.PoolConfig
		want     string
	}{
		{"unknown kind", buffers.PoolConfig{Kind: "dax"}, nil, `settings.memory.arena: unknown memory kind "dax" (known: heap, hugepage, plain, thp)`},
		{"path without kind", buffers.PoolConfig{Path: "/dev/shm/x"}, nil, "arena hugepage does not use a path or size"},
		{"path on thp", buffers.PoolConfig{Kind: "thp", Path: "/dev/shm/x"}, nil, "arena thp does not use a path or size"},
		{"negative budget", buffers.PoolConfig{Kind: "plain", Budget: -1}, nil, "budgets must be ≥ 0"},
		{"soft above hard", buffers.PoolConfig{Kind: "plain", Budget: 1, SoftBudget: 2}, nil, "the soft budget at most the hard one"},
		{"node kind", buffers.PoolConfig{}, &buffers.PoolConfig{Kind: "nope"}, `p.memory.arena: unknown memory kind "nope"`},
		{"node path", buffers.PoolConfig{}, &buffers.PoolConfig{Path: "/x"}, "p.memory.arena: a path or size needs an arena kind backed by a file"},
		{"node budget", buffers.PoolConfig{}, &buffers.PoolConfig{Budget: -5}, "p.memory.budget: a budget must be ≥ 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compile(graph(c.settings, c.node), CompileOptions{Registry: testRegistry()})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	if _, err := Compile(graph(buffers.PoolConfig{Kind: "heap", Budget: 1 << 20}, &buffers.PoolConfig{Budget: 1 << 10}), CompileOptions{Registry: testRegistry()}); err != nil {
		t.Fatalf("a valid memory config: %v", err)
	}
}
