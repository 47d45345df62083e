//go:build linux

package rdma

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Device is a verbs device the kernel lists under
// /sys/class/infiniband: a NIC with RDMA, or a Soft-RoCE (rxe) or iWARP
// (siw) device over an Ethernet interface.
type Device struct {
	Name   string   `json:"name"`
	Node   int      `json:"numa_node"` // -1 when the kernel does not say
	Netdev []string `json:"netdevs,omitempty"`
	Kind   string   `json:"kind"`   // rxe, siw, or hca
	Active bool     `json:"active"` // port 1's state is ACTIVE
}

// Devices lists the verbs devices under sys (normally /sys).
func Devices(sys string) ([]Device, error) {
	dir := filepath.Join(sys, "class", "infiniband")
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Device
	for _, e := range ents {
		d := Device{Name: e.Name(), Node: -1, Kind: "hca"}
		switch {
		case strings.HasPrefix(d.Name, "rxe"):
			d.Kind = "rxe"
		case strings.HasPrefix(d.Name, "siw"):
			d.Kind = "siw"
		}
		if b, err := os.ReadFile(filepath.Join(dir, d.Name, "device", "numa_node")); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				d.Node = n
			}
		}
		if b, err := os.ReadFile(filepath.Join(dir, d.Name, "ports", "1", "state")); err == nil {
			d.Active = strings.Contains(string(b), "ACTIVE")
		}
		if b, err := os.ReadFile(filepath.Join(dir, d.Name, "parent")); err == nil {
			d.Netdev = append(d.Netdev, strings.TrimSpace(string(b)))
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

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
// takes the first verbs device whose port 1 is active when the binary
// has a verbs provider (HasVerbs), and the emulation otherwise.
func Choose(device, sys string) (Backend, error) {
	devs, err := Devices(sys)
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
		for _, d := range devs {
			if d.Active {
				return Backend{Name: d.backend(), Device: d.Name, Reason: fmt.Sprintf("verbs device %s (%s, port 1 active, NUMA node %d; the first active of %s)", d.Name, d.Kind, d.Node, strings.Join(names, ", "))}, nil
			}
		}
		return Backend{Name: Emulated, Reason: fmt.Sprintf("no port of the verbs devices %s is active", strings.Join(names, ", "))}, nil
	case "emulated":
		return Backend{Name: Emulated, Reason: "device: emulated"}, nil
	}
	if !HasVerbs {
		return Backend{}, fmt.Errorf("rdma: device %q: this binary has no verbs provider (built without libibverbs); use device: auto or emulated", device)
	}
	for _, d := range devs {
		if d.Name == device {
			if !d.Active {
				return Backend{}, fmt.Errorf("rdma: device %q: port 1 is not active", device)
			}
			return Backend{Name: d.backend(), Device: d.Name, Reason: "device: " + device}, nil
		}
	}
	return Backend{}, fmt.Errorf("rdma: no verbs device %q in %s (there: %s)", device, dir, strings.Join(names, ", "))
}

func (d Device) backend() string {
	if d.Kind == "rxe" {
		return "rdma/rxe"
	}
	return "rdma/" + d.Name
}
