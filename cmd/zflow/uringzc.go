package main

// The zflow command links tcp_out's uring_zc send path (io_uring
// SENDMSG_ZC) and tcp_in's uring_multishot receive path (io_uring
// multishot RECV into provided buffers). They bring in io/uring, so
// building the command needs -ldflags=-checklinkname=0 (make build adds
// it).
import (
	_ "github.com/zflowdev/zflow/io/netzc/uringzc"
	_ "github.com/zflowdev/zflow/io/stream/uringrecv"
)
