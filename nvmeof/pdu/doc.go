// Package pdu is the NVMe/TCP transport's wire format: the 8-byte common
// header, the nine PDU types (ICReq, ICResp, H2CTermReq, C2HTermReq,
// CapsuleCmd, CapsuleResp, H2CData, C2HData, R2T), the padding that aligns
// data to the receiver's PDA, and the CRC-32C header and data digests. It
// follows the NVMe/TCP transport specification as summarised in
// docs/nvme-tcp.md (sections 1–4); the queue entries inside capsules are
// package nvme's.
//
// Encode and AppendHeader write PDUs; Decode and ParseHeader read them.
// Decoding never panics and never reads past the buffer it is given: a bad
// PDU is an *Error naming the PDU type, the field and its byte offset, and
// carrying the fatal error status (FES) and information (FEI) a TermReq
// answers it with.
//
// Conn frames PDUs over a byte stream (a net.Conn): it reads the common
// header, checks hlen, pdo and plen against the type and the negotiated
// limits before it allocates or reads anything more, reads data PDUs'
// payloads straight into the caller's buffer, and writes PDUs with
// vectored writes (net.Buffers) so the payload is never copied into a PDU
// buffer: one PDU (Write), or all that Queue gathered (Flush), so a burst
// of PDUs costs one system call.
package pdu
