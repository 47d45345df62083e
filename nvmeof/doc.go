// Package nvmeof will hold zflow's own NVMe over TCP: the PDU codec, a
// target and an initiator, and discovery, following the NVMe/TCP transport
// specification (docs/nvme-tcp.md is the brief, with the conformance
// checklist the tests follow).
package nvmeof
