// Package initiator is an NVMe/TCP host: it connects to a controller (the
// admin queue, then one TCP connection per I/O queue), enables it through
// the Fabrics properties, identifies it and its namespaces, and reads,
// writes and flushes with many commands in flight per queue. It follows the
// NVMe/TCP transport specification as docs/nvme-tcp.md summarises it, and
// sends what the Linux host sends (HPDA 0, MAXR2T 0, SGL flags on every
// command).
//
// Data read lands straight in the caller's buffer (pdu.Conn reads C2H data
// into it); write data leaves from the caller's buffer without a copy,
// either in the capsule when it fits the controller's IOCCSZ or in H2CData
// PDUs after the controller's R2T, sent by their own goroutine so the
// reader never blocks on a write. When a queue's connection fails, every
// command in flight on it returns a *QueueError; with
// Config.ReconnectTimeout the controller then reconnects the whole
// association with back-off and sends the idempotent I/O commands that
// were in flight again (reconnect.go says exactly what is promised).
package initiator
