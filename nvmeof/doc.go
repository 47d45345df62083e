// Package nvmeof will hold zflow's own NVMe over TCP: the PDU codec, a
// target and an initiator, and discovery, following the NVMe/TCP transport
// specification (see ../shared/nvme-tcp.md for the brief).
package nvmeof
