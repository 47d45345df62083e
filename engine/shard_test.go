package engine

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestShards: three shards of one run read every batch of a shardable
// source exactly once between them, each splitting its share over as
// many instances as it runs (1, 2 and 3 here: shards on machines with
// different CPU counts), and a source that cannot split only on shard 0.
func TestShards(t *testing.T) {
	var all, plain []int64
	for shard := range 3 {
		mem := newCountingAlloc()
		s1, s2 := &collectConfig{}, &collectConfig{}
		g := &Graph{Name: "sh", Settings: Settings{Shard: Shard{Index: shard, Count: 3}}, Nodes: []*Node{
			{ID: "split", Kind: KindSource, Type: "sseq", Config: &seqConfig{Batches: 20, Rows: 10}, Parallelism: shard + 1, Unordered: true},
			{ID: "whole", Kind: KindSource, Type: "seq", Config: &seqConfig{Batches: 4, Rows: 10}},
			{ID: "o1", Kind: KindSink, Type: "collect", Config: s1, Inputs: []string{"split"}},
			{ID: "o2", Kind: KindSink, Type: "collect", Config: s2, Inputs: []string{"whole"}},
		}}
		p := mustCompile(t, g)
		if !strings.Contains(p.Info["shard"], "of 3") {
			t.Errorf("the plan does not say the shard: %q", p.Info["shard"])
		}
		if _, err := p.Run(context.Background(), RunOptions{Alloc: mem}); err != nil {
			t.Fatal(err)
		}
		checkNoLeaks(t, mem)
		if len(s1.got) == 0 {
			t.Errorf("shard %d read none of the shardable source", shard)
		}
		all = append(all, s1.got...)
		if shard > 0 && len(s2.got) > 0 {
			t.Errorf("shard %d read the source that cannot split: %v", shard, s2.got)
		}
		plain = append(plain, s2.got...)
	}
	slices.Sort(all)
	for i, v := range all {
		if v != int64(i*10) {
			t.Fatalf("the shards read batches %v, want each of the 20 once", all)
		}
	}
	if len(all) != 20 || len(plain) != 4 {
		t.Fatalf("%d batches of the split source, %d of the whole one", len(all), len(plain))
	}

	bad := &Graph{Name: "bad", Settings: Settings{Shard: Shard{Index: 3, Count: 3}}, Nodes: []*Node{
		{ID: "s", Kind: KindSource, Type: "seq"},
		{ID: "o", Kind: KindSink, Type: "collect", Config: &collectConfig{}, Inputs: []string{"s"}},
	}}
	if _, err := Compile(bad, CompileOptions{Registry: testRegistry()}); err == nil || !strings.Contains(err.Error(), "shard 3 of 3") {
		t.Fatalf("shard 3 of 3: %v", err)
	}
}
