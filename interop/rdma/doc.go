// Package rdma holds checks of zflow's RDMA path (io/rdma, rdma_out and
// rdma_in) on real verbs: Soft-RoCE (the kernel's rdma_rxe) in the QEMU
// guest of `make interop` (interop/README.md, docs/guest.md). The guest's
// /init loads rdma_rxe and ib_uverbs, brings eth0 up and runs the test
// binary with ZFLOW_GUEST=rdma and ZFLOW_BIN pointing at a zflow built with
// cgo and the rdma_verbs tag (linked against libibverbs; the guest has
// rdma-core's libraries, the rxe provider, iproute2's rdma tool,
// ibverbs-utils and perftest). The tests check:
//
//  1. the device (TestSoftRoCEDevice): `rdma link add rxe0 type rxe netdev
//     eth0` makes rxe0, `ibv_devices` lists it, its port 1 is ACTIVE, and
//     zflow's plan picks it (`device: auto` says rdma/rxe);
//  2. the reference (TestIBWriteBW): perftest's ib_write_bw, server and
//     client on rxe0 over RoCE v2, reports a bandwidth;
//  3. two zflow processes over real RDMA WRITEs (TestTwoProcessesVerbs):
//     generate → rdma_out in one, rdma_in → CSV in the other, the CSV equal
//     to a direct run's, both run summaries saying rdma/rxe, nothing copied
//     on either side (the NIC's DMA is no CPU copy) and every byte rdma_in
//     emits in its registered region.
package rdma
