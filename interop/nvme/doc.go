// Package nvme holds checks of zflow's NVMe/TCP (nvmeof/) against the Linux
// kernel's own NVMe/TCP host (nvme-tcp) and target (nvmet-tcp), run inside
// the QEMU guest of `make interop` (see interop/README.md and
// docs/guest.md). The package has no code of its own: its tests drive the
// kernel through its real interfaces (/dev/nvme-fabrics, the admin
// passthrough ioctl, block devices opened with O_DIRECT, nvmet's configfs
// tree, /dev/kmsg) and our target and initiator in the same process.
//
// Checks 1 to 3 talk over the guest's own loopback (127.0.0.1): the kernel
// host and our target, our initiator and the kernel target, all in one
// boot, with no virtual NIC or port forwarding in between. Check 4 crosses
// from the guest to the host over QEMU's user-mode network (a virtio NIC;
// the host's 127.0.0.1 is 10.0.2.2 from the guest). The guest's
// /init loads the modules (configfs, null_blk with one memory-backed 1 GiB
// device, crc32c, nvme-tcp, nvmet-tcp, from the same Debian kernel package
// as the kernel), mounts configfs and brings lo up, then runs the test
// binary with ZFLOW_GUEST=nvme. The tests check:
//
//  1. the kernel host against our target (TestKernelHostOurTarget), without
//     and with header and data digests: discovery through a discovery
//     controller the kernel makes (its log read with the admin passthrough
//     ioctl), connect through /dev/nvme-fabrics, identify (sysfs and
//     Identify Controller through the ioctl), a pattern written with
//     O_DIRECT to the block device of a RAM namespace and of a file
//     namespace and read back through the kernel, through our own
//     initiator and from the namespace's memory or file, then a clean
//     disconnect (our target sees the controller go) and no kernel
//     warning, call trace or NVMe error in the kernel log;
//  2. our initiator against the kernel target (TestOurHostKernelTarget),
//     configured through configfs with a null_blk namespace (memory
//     backed) and a file on tmpfs (buffered_io=1), without and with
//     digests: discover, connect, identify, writes of many sizes (in the
//     capsule and through R2Ts) read back through our initiator and
//     straight from the backing device or file;
//  3. the nvme pipeline sink and source through the kernel target
//     (TestPipelineThroughKernelTarget): one zflow run writes a stream into
//     the null_blk namespace, another reads it back, CSV equal to a direct
//     run's;
//  4. the kernel host against our target running on the HOST
//     (TestKernelHostTargetOnHost): run.sh starts `zflow nvmeof serve`
//     with a file namespace on the host before the boot and passes its
//     address (ZFLOW_HOST_NVME); the kernel discovers it, connects with
//     digests and identifies it, busybox dd writes 4 MiB with O_DIRECT and
//     reads them back equal; the test prints the offset, length and
//     sha256 it wrote, and run.sh checks those bytes in the namespace file
//     on the host after the guest powers off, and that the target stopped
//     on SIGTERM with every connection closed.
//
// Everywhere else each test skips and says how to run it; off Linux the
// tests are not built at all. The test names and their "--- PASS" lines are
// what the host harness looks for in the serial log; keep them in step with
// interop/guest/run.sh.
package nvme
