package topology

import (
	"strings"
	"testing"
)

func TestLabels(t *testing.T) {
	m := &Machine{CPUs: 8, Nodes: []Node{{ID: 0, CPUs: []int{0, 1}}, {ID: 1, CPUs: []int{2}}, {ID: 2}},
		DAX: []DAXDevice{{Name: "dax0.0"}}, NVMe: []NVMeController{{Name: "nvme0"}}, RDMA: []RDMADevice{{Name: "rxe0"}, {Name: "mlx5_0/x"}}}
	l := m.Labels()
	want := map[string]string{"zflow.dev/cpus": "8", "zflow.dev/numa-nodes": "3", "zflow.dev/memory-nodes": "1",
		"zflow.dev/dax.dax0.0": "true", "zflow.dev/nvme.nvme0": "true", "zflow.dev/rdma.rxe0": "true", "zflow.dev/rdma.mlx5_0-x": "true"}
	if len(l) != len(want) {
		t.Fatalf("labels %v", l)
	}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("%s = %q, want %q", k, l[k], v)
		}
	}
	var b strings.Builder
	if err := m.WriteLabels(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "zflow.dev/cpus=8\nzflow.dev/dax.dax0.0=true\n") {
		t.Errorf("printed:\n%s", b.String())
	}
	if got := DAXLabel("-" + strings.Repeat("a", 70) + "-"); len(got) != len("zflow.dev/dax.")+50 {
		t.Errorf("a long name: %q", got)
	}
}
