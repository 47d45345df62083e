// Package topology describes the machine from sysfs and procfs: NUMA nodes
// with their CPUs, memory and hugepage pools, CPU-less memory nodes (how CXL
// Type-3 memory expanders appear), device-DAX devices, NVMe controllers and
// NICs with the node each sits on. On top of that description it offers a
// small placement policy (which node is near this file, NIC, DAX device or
// CPU, and why), thread affinity (PinCurrentThread) and a doctor (Check) that
// says what is missing for hugepage- and NUMA-backed arenas and how to fix it.
//
// The model follows the kernel's own documentation of these files:
// Documentation/ABI/stable/sysfs-devices-node (nodeN/cpulist, meminfo,
// distance, hugepages), Documentation/admin-guide/mm/hugetlbpage.rst,
// Documentation/admin-guide/mm/transhuge.rst, Documentation/ABI/testing/
// sysfs-bus-dax, sysfs-class-net and the nvme class attributes. Only what
// placement needs is read; everything else is left to numactl/lstopo.
//
// Read takes a Root (where sysfs and procfs are mounted), so the tests run on
// small fake trees under testdata/ that copy the kernel's file layout,
// symlinks included. Read is the only function that walks the whole tree;
// the placement methods read a few more sysfs files (a block device's
// parents) from the same Root. Missing optional parts (no NVMe, no DAX, no
// hugetlb) are not errors; an unreadable or malformed mandatory file is an
// error that names the file.
//
// It imports nothing of ours.
package topology
