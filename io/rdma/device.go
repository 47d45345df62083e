package rdma

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Defaults for RecvOptions.
const (
	DefaultWindow = 64 << 20
	DefaultRecvs  = 64
)

// Device is a verbs device the kernel lists under
// /sys/class/infiniband: a NIC with RDMA, or a Soft-RoCE (rxe) or iWARP
// (siw) device over an Ethernet interface.
type Device struct {
	Name   string   `json:"name"`
	Node   int      `json:"numa_node"` // -1 when the kernel does not say
	Netdev []string `json:"netdevs,omitempty"`
	Kind   string   `json:"kind"` // rxe, siw, or hca
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
		if b, err := os.ReadFile(filepath.Join(dir, d.Name, "parent")); err == nil {
			d.Netdev = append(d.Netdev, strings.TrimSpace(string(b)))
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Backend is what carries a stream: the zflow.io.backend attribute's
// value and the reason for it.
type Backend struct {
	Name   string // rdma/emulated, rdma/rxe, rdma/<device>
	Reason string
}

// Emulated is the emulated provider's backend name.
const Emulated = "rdma/emulated"

// Choose picks the provider for device (auto, emulated, or a device
// name), with the reason, or says why the choice cannot run here. This
// build has the emulated provider only: a device named explicitly is
// refused, and auto uses the emulation whatever devices exist.
func Choose(device, sys string) (Backend, error) {
	devs, err := Devices(sys)
	if err != nil {
		return Backend{}, fmt.Errorf("rdma: list verbs devices: %w", err)
	}
	names := make([]string, len(devs))
	for i, d := range devs {
		names[i] = d.Name
	}
	switch device {
	case "", "auto":
		if len(devs) == 0 {
			return Backend{Emulated, "no verbs device in " + filepath.Join(sys, "class", "infiniband")}, nil
		}
		return Backend{Emulated, fmt.Sprintf("verbs devices %s are present, but this binary has no verbs provider (built without libibverbs)", strings.Join(names, ", "))}, nil
	case "emulated":
		return Backend{Emulated, "device: emulated"}, nil
	}
	return Backend{}, fmt.Errorf("rdma: device %q: this binary has no verbs provider (built without libibverbs); use device: auto or emulated", device)
}
