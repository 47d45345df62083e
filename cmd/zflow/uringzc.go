package main

// The zflow command links tcp_out's uring_zc send path (io_uring
// SENDMSG_ZC). It brings in io/uring, so building the command needs
// -ldflags=-checklinkname=0 (make build adds it).
import _ "github.com/zflowdev/zflow/io/netzc/uringzc"
