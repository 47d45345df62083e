package pipelines

import (
	"fmt"
	"testing"
)

// TestQuietFallback: the arena's fallbacks are warnings only when the file
// names the arena, in settings.memory or in a node's memory: block.
func TestQuietFallback(t *testing.T) {
	const body = "sources:\n  g: {type: gen, rows: 10, columns: [{name: qty, type: int64}]%s}\nsinks:\n  out: {type: stdout, inputs: [g]}\n"
	for _, c := range []struct {
		settings, node   string
		quiet, nodeQuiet bool
	}{
		{"", "", true, false},
		{"settings: {memory: {budget: 1GiB}}\n", "", true, false},
		{"settings: {memory: {arena: hugepage}}\n", "", false, false},
		{"settings: {memory: {arena: thp}}\n", ", memory: {arena: hugepage}", false, false},
	} {
		src := "version: 1\nname: q\n" + c.settings + fmt.Sprintf(body, c.node)
		p, err := Parse([]byte(src), "q.yaml", testOpts(nil)...)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if got := p.Graph.Settings.Memory.QuietFallback; got != c.quiet {
			t.Errorf("%q: run pool QuietFallback %v, want %v", c.settings, got, c.quiet)
		}
		m := p.Graph.Nodes[0].Memory
		if (m != nil) != (c.node != "") {
			t.Fatalf("%q: node memory %+v", c.node, m)
		}
		if m != nil && m.QuietFallback != c.nodeQuiet {
			t.Errorf("%q: node pool QuietFallback %v, want %v", c.node, m.QuietFallback, c.nodeQuiet)
		}
	}
}
