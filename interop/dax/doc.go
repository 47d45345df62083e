// Package dax holds checks that need a real device-DAX device, run inside
// the QEMU guest of `make interop` (see interop/README.md and
// docs/guest.md). The package has no code of its own: its tests drive the
// real zflow binary against /dev/dax0.0 and check what it did against the
// kernel's sysfs and against a run that does not cross a process boundary.
//
// The guest (interop/guest/run.sh) has an emulated NVDIMM (QEMU's
// memory-backend-file and -device nvdimm, label-less) on NUMA node 2, the
// memory-only node. Its /init loads the kernel's NVDIMM stack (nfit,
// libnvdimm, nd_pmem, dax_pmem, device_dax), turns the NVDIMM's raw
// namespace into a devdax one through sysfs (the region's dax seed gets the
// namespace, a 2 MiB align and a uuid, and is bound to dax_pmem), and runs
// the test binary with ZFLOW_GUEST=dax once /dev/dax0.0 is there. The tests
// check:
//
//  1. the topology: `zflow topology` and `zflow topology --json` list
//     /dev/dax0.0 with the size, align and target node sysfs gives;
//  2. an exchange: a producer whose arena is the device (`arena: cxl, path:
//     /dev/dax0.0`) publishes batches through shm_out, a consumer in another
//     zflow process reads them through shm_in; its output equals a direct
//     run's and neither side copies a byte (the copy ledger); the segment
//     `zflow shm inspect --json` reports has the device's size and align;
//  3. a restart: `zflow shm gc --remove` wipes the segment's header (a
//     device cannot be unlinked), the device is then no segment, and the
//     next exchange makes it anew (its generation goes up) and passes the
//     same checks.
//
// Everywhere else each test skips and says how to run it; off Linux the
// tests are not built at all. The test names and their "--- PASS" lines are
// what the host harness looks for in the serial log; keep them in step with
// interop/guest/run.sh.
package dax
