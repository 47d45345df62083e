package topology

import "fmt"

// NotLinux is the machine Read(Host()) returns on an OS other than Linux
// (goos and goarch as runtime.GOOS and runtime.GOARCH name them): only what
// Go itself knows, cpus CPUs (runtime.NumCPU) on one node 0 with unknown
// memory, no hugepages, THP, DAX, NVMe or NICs, and a Note that says all
// of that is read from Linux sysfs and procfs only. Placement then always
// picks node 0; pinning and binding fail with errors.ErrUnsupported, and
// callers carry on unpinned and on the Go heap. It is exported, and
// independent of the OS it runs on, so that its output can be tested
// anywhere.
func NotLinux(goos, goarch string, cpus int) *Machine {
	ids := make([]int, cpus)
	for i := range ids {
		ids[i] = i
	}
	return &Machine{
		Kernel: goos + "/" + goarch,
		CPUs:   cpus,
		Nodes: []Node{{
			ID: 0, CPUs: ids, Distances: []int{10}, HugePages: []HugePool{},
		}},
		HugePageSizes: []int64{},
		HugePages:     []HugePool{},
		DAX:           []DAXDevice{},
		NVMe:          []NVMeController{},
		NICs:          []NIC{},
		RDMA:          []RDMADevice{},
		Note: fmt.Sprintf("%s/%s is not Linux: NUMA nodes, memory, hugepages, transparent hugepages, the memlock limit, "+
			"DAX devices, NVMe controllers and NICs are read from Linux sysfs and procfs only; shown: the %d CPUs Go sees, on one node. "+
			"Arenas use the Go heap and operators run unpinned.", goos, goarch, cpus),
		root: Host(),
	}
}
