// Package target is an NVMe/TCP controller: it serves NVM subsystems,
// each named by its NQN, whose namespaces are RAM or files, and the
// discovery subsystem, whose log lists them per port, to hosts that
// connect over TCP (the NVMe/TCP transport and NVMe over Fabrics
// specifications; docs/nvme-tcp.md is the brief and says which checklist
// items are covered).
//
// Each TCP connection is one queue: the admin queue (QID 0), whose Connect
// creates a controller (dynamic model, ids from 1), or an I/O queue of an
// enabled controller. One goroutine per connection reads PDUs and runs the
// commands in arrival order; completions, data and R2Ts go out on the
// same connection, each PDU whole, queued and sent together in one
// vectored write once the next PDU has not already arrived whole (or
// 256 KiB of data waits). Data buffers come from a pool per connection. A write either carries its data in the
// capsule (up to Config.InCapsule bytes) or is answered with R2Ts (one
// for all of it, or several of Config.R2TChunk in turn), and runs once the
// H2CData PDUs have delivered every byte. A bad data digest fails only the
// command the data belongs to (transient transport error). A fatal
// protocol error is answered with a C2HTermReq carrying FES, FEI and
// the offending header, then the connection closes; a command error is a
// completion with the NVMe status.
//
// What a namespace promises: RAM keeps nothing across a restart; a file
// namespace's Flush is fsync, so data written and then flushed survives a
// restart of the target.
package target
