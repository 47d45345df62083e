package topology

import (
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/zflowdev/zflow/internal/k8sname"
)

// LabelPrefix starts every node label Labels makes.
const LabelPrefix = "zflow.dev/"

// Label keys Labels makes; the device ones are followed by the device's
// name (DAXLabel and the like).
const (
	LabelNUMANodes   = LabelPrefix + "numa-nodes"   // NUMA nodes, memory-only ones included
	LabelMemoryNodes = LabelPrefix + "memory-nodes" // NUMA nodes without CPUs (CXL memory)
	LabelCPUs        = LabelPrefix + "cpus"         // online CPUs
)

// DAXLabel, NVMeLabel and RDMALabel are the keys of a node label saying
// the machine has that device (value "true").
func DAXLabel(name string) string  { return LabelPrefix + "dax." + k8sname.Value(name, 50, '-') }
func NVMeLabel(name string) string { return LabelPrefix + "nvme." + k8sname.Value(name, 50, '-') }
func RDMALabel(name string) string { return LabelPrefix + "rdma." + k8sname.Value(name, 50, '-') }

// Labels are the machine's facts as Kubernetes node labels: how many NUMA
// nodes (and memory-only ones) and CPUs it has, and which DAX, NVMe and
// RDMA devices. Given to a kubelet (--node-labels) or to kubectl label,
// they let a cluster run ask the scheduler for a node where its placement
// is possible: the device a pipeline names, the NUMA node it binds to.
func (m *Machine) Labels() map[string]string {
	l := map[string]string{LabelCPUs: strconv.Itoa(m.CPUs), LabelNUMANodes: strconv.Itoa(len(m.Nodes))}
	mem := 0
	for _, n := range m.Nodes {
		if len(n.CPUs) == 0 {
			mem++
		}
	}
	l[LabelMemoryNodes] = strconv.Itoa(mem)
	for _, d := range m.DAX {
		l[DAXLabel(d.Name)] = "true"
	}
	for _, c := range m.NVMe {
		l[NVMeLabel(c.Name)] = "true"
	}
	for _, r := range m.RDMA {
		l[RDMALabel(r.Name)] = "true"
	}
	return l
}

// WriteLabels prints the labels as key=value lines, sorted.
func (m *Machine) WriteLabels(w io.Writer) error {
	l := m.Labels()
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, err := fmt.Fprintf(w, "%s=%s\n", k, l[k]); err != nil {
			return err
		}
	}
	return nil
}
