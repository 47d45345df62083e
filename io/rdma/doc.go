// Package rdma carries Arrow record batches from one process into
// another's memory with one-sided RDMA operations, in the verbs model: a
// protection domain (PD) holds memory regions (MR) registered once and
// named by lkey and rkey; a reliable-connected queue pair (QP) posts
// WRITE, WRITE_WITH_IMM and READ work requests whose gather lists are
// buffers in registered regions; a completion queue (CQ) returns their
// outcomes in batches. Faults follow an RC queue pair's: a request the
// peer refuses (unknown or revoked rkey, access, bounds, no receive
// posted) comes back with the reason, both ends go to the error state and
// flush what is outstanding.
//
// Two providers stand behind those types. The real one (ibv_linux.go,
// built with cgo and -tags rdma_verbs) drives libibverbs: regions
// registered with the device, an RC QP connected through the control
// channel, completions from a completion channel. The emulation, in every
// build, has the same semantics for machines without an RDMA NIC: each QP
// is a TCP connection; on one host the peer's region is a memfd this
// process maps, so a WRITE is placed by a memory copy and only its header
// crosses the socket; across hosts the bytes follow the header and the
// responder reads them straight into the region. Choose says which
// provider a device setting gets and why.
//
// Sender and Receiver run the batch stream of the rdma_out sink and the
// rdma_in source over a control connection (hello, schema, the region's
// key and handle, credit, a checked end, errors): each batch is a span of
// the receiver's ring — descriptor, IPC metadata, body — whose body is
// WRITten from the batch's own buffers and whose descriptor follows with
// an immediate; the receiver builds the arrays where the bytes landed,
// and the span returns as credit when the batch is released. The wire
// formats are docs/rdma.md.
package rdma
