// Package nvme holds the parts of the NVM Express base specification and of
// NVMe over Fabrics that do not depend on the transport: the 64-byte
// submission queue entry (Command), the 16-byte completion queue entry
// (Completion), SGL descriptors, status codes, the Fabrics commands
// (Connect, Property Get and Set) and their data, and the Identify data
// structures a target answers with.
//
// Everything is little-endian, as in the specification. Marshal methods
// write into a caller's buffer of the exact size; Unmarshal methods read from
// one and never panic on short or hostile input: they return an error that
// names the structure, the field and its byte offset. docs/nvme-tcp.md
// (sections 3, 5 and 6) is the brief these layouts follow.
package nvme
