// Package nvmeof is zflow's own NVMe over TCP, following the NVMe/TCP
// transport specification and the NVMe base and fabrics specifications
// (docs/nvme-tcp.md is the brief, with the conformance checklist the tests
// follow). Its subpackages:
//
//   - nvme: the transport-independent parts — submission and completion
//     queue entries, SGL descriptors, status codes, the Fabrics Connect and
//     Property commands, Identify data structures.
//   - pdu: the NVMe/TCP wire format — the nine PDU types, padding, CRC-32C
//     digests — and Conn, which frames PDUs over a net.Conn.
//   - target: an NVMe/TCP controller serving namespaces.
//   - initiator: a host that connects to a controller and issues commands.
//
// docs/nvme-tcp.md says which parts are built and which checklist items
// the tests cover.
package nvmeof
