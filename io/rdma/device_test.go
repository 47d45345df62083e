//go:build linux

package rdma

import (
	"strings"
	"testing"

	"github.com/zflowdev/zflow/topology"
)

func TestPickDevice(t *testing.T) {
	devs := []topology.RDMADevice{
		{Name: "mlx5_0", Node: 0, State: "DOWN"},
		{Name: "mlx5_1", Node: 0, State: "ACTIVE"},
		{Name: "mlx5_2", Node: 1, State: "ACTIVE"},
	}
	for _, tc := range []struct {
		node int
		want string
		why  string
	}{
		{1, "mlx5_2", "on NUMA node 1, where the run's memory is bound"},
		{0, "mlx5_1", "on NUMA node 0"},
		{2, "mlx5_1", "no active device on node 2"},
		{-1, "mlx5_1", "bound to no node"},
	} {
		d, why, ok := pickDevice(devs, tc.node)
		if !ok || d.Name != tc.want || !strings.Contains(why, tc.why) {
			t.Errorf("node %d: %s (%q, %v), want %s (%q)", tc.node, d.Name, why, ok, tc.want, tc.why)
		}
	}
	if _, _, ok := pickDevice(devs[:1], 0); ok {
		t.Error("a device whose port is down was picked")
	}
}

// Without a verbs provider auto emulates and says why, and a named device
// is refused; a sysfs tree without devices says there are none.
func TestChooseWithoutVerbs(t *testing.T) {
	if HasVerbs {
		t.Skip("this binary has the verbs provider")
	}
	b, err := Choose("auto", t.TempDir(), -1)
	if err != nil || b.Name != Emulated || !strings.Contains(b.Reason, "no verbs device") {
		t.Fatalf("auto on an empty tree: %+v, %v", b, err)
	}
	if b, err := Choose("emulated", t.TempDir(), -1); err != nil || b.Name != Emulated {
		t.Fatalf("emulated: %+v, %v", b, err)
	}
	if _, err := Choose("mlx5_0", t.TempDir(), -1); err == nil || !strings.Contains(err.Error(), "no verbs provider") {
		t.Fatalf("a named device: %v", err)
	}
}
