//go:build linux

package rdma

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/zflowdev/zflow/topology"
)

// Backend is what carries a stream: the zflow.io.backend attribute's
// value, the verbs device ("" for the emulation) and the reason.
type Backend struct {
	Name   string // rdma/emulated, rdma/rxe, rdma/<device>
	Device string
	Reason string
}

// Emulated is the emulated provider's backend name.
const Emulated = "rdma/emulated"

// Choose picks the provider for device (auto, emulated, or a device
// name), with the reason, or says why the choice cannot run here. auto
// takes a verbs device whose port 1 is active when the binary has a verbs
// provider (HasVerbs) — the one on node, the NUMA node the run's memory
// is bound to (-1: not bound), when there is one — and the emulation
// otherwise.
func Choose(device, sys string, node int) (Backend, error) {
	devs, err := topology.ReadRDMA(topology.Root{Sys: sys, Proc: "/proc"})
	if err != nil {
		return Backend{}, fmt.Errorf("rdma: list verbs devices: %w", err)
	}
	names := make([]string, len(devs))
	for i, d := range devs {
		names[i] = d.Name
	}
	dir := filepath.Join(sys, "class", "infiniband")
	switch device {
	case "", "auto":
		if len(devs) == 0 {
			return Backend{Name: Emulated, Reason: "no verbs device in " + dir}, nil
		}
		if !HasVerbs {
			return Backend{Name: Emulated, Reason: fmt.Sprintf("verbs devices %s are present, but this binary has no verbs provider (built without libibverbs)", strings.Join(names, ", "))}, nil
		}
		d, why, ok := pickDevice(devs, node)
		if !ok {
			return Backend{Name: Emulated, Reason: fmt.Sprintf("no port of the verbs devices %s is active", strings.Join(names, ", "))}, nil
		}
		return Backend{Name: backendName(d), Device: d.Name, Reason: fmt.Sprintf("verbs device %s (%s, port 1 active; %s)", d.Name, d.Kind, why)}, nil
	case "emulated":
		return Backend{Name: Emulated, Reason: "device: emulated"}, nil
	}
	if !HasVerbs {
		return Backend{}, fmt.Errorf("rdma: device %q: this binary has no verbs provider (built without libibverbs); use device: auto or emulated", device)
	}
	for _, d := range devs {
		if d.Name == device {
			if d.State != "ACTIVE" {
				return Backend{}, fmt.Errorf("rdma: device %q: port 1 is %s, not active", device, d.State)
			}
			return Backend{Name: backendName(d), Device: d.Name, Reason: "device: " + device}, nil
		}
	}
	return Backend{}, fmt.Errorf("rdma: no verbs device %q in %s (there: %s)", device, dir, strings.Join(names, ", "))
}

// pickDevice is auto's choice among devs: an active one on node (the
// node of the run's memory, -1 for none) first, else the first active
// one; and why.
func pickDevice(devs []topology.RDMADevice, node int) (topology.RDMADevice, string, bool) {
	var first *topology.RDMADevice
	for i := range devs {
		d := &devs[i]
		if d.State != "ACTIVE" {
			continue
		}
		if node >= 0 && d.Node == node {
			return *d, fmt.Sprintf("on NUMA node %d, where the run's memory is bound", node), true
		}
		if first == nil {
			first = d
		}
	}
	if first == nil {
		return topology.RDMADevice{}, "", false
	}
	switch {
	case node >= 0:
		return *first, fmt.Sprintf("no active device on node %d, where the run's memory is bound; the first active, on node %d", node, first.Node), true
	default:
		return *first, fmt.Sprintf("the run's memory is bound to no node; the first active, on node %d", first.Node), true
	}
}

func backendName(d topology.RDMADevice) string {
	if d.Kind == "rxe" {
		return "rdma/rxe"
	}
	return "rdma/" + d.Name
}
