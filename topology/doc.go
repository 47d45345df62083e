// Package topology will describe the machine from sysfs and procfs: NUMA
// nodes with their CPUs, memory and hugepage pools, CPU-less memory nodes
// (CXL Type-3), device-DAX devices, NVMe controllers and NICs with the node
// they sit on; and the affinity and memory-policy calls that place operator
// instances near their data. It imports nothing of ours.
package topology
