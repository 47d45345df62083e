package operators

import (
	"time"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/rdma"
)

// RDMAOutConfig configures the rdma_out sink.
type RDMAOutConfig struct {
	Address        string        `zflow:"address" required:"true" doc:"HOST:PORT of the rdma_in source's control channel" example:"127.0.0.1:7171"`
	Device         string        `zflow:"device" doc:"the verbs device: auto picks one near the data when the binary has a verbs provider and otherwise the emulated transport; emulated asks for the emulation (docs/rdma.md)"`
	ConnectTimeout time.Duration `zflow:"connect_timeout" doc:"keep trying to connect, with exponential back-off, this long"`
	Emulation      string        `zflow:"emulation" enum:"auto,mapped,tcp" doc:"the emulated transport only: mapped maps the receiver's region here (both on one host) and places each WRITE with a memory copy; tcp sends the WRITEs' bytes over the queue pair's connection, as between hosts; auto maps where it can and says why not where it cannot"`
}

// RDMAInConfig configures the rdma_in source.
type RDMAInConfig struct {
	Listen        string        `zflow:"listen" required:"true" doc:"HOST:PORT of the control channel an rdma_out connects to; the queue pair listens on the same host, on a port the system picks" example:"127.0.0.1:7171"`
	Device        string        `zflow:"device" doc:"the verbs device, as rdma_out's"`
	Schema        []ColumnDef   `zflow:"schema" doc:"the columns the stream must have (checked when it starts). Without it the source accepts the sender at compile time and takes the stream's schema, so compiling (zflow plan too) waits up to accept_timeout"`
	AcceptTimeout time.Duration `zflow:"accept_timeout" doc:"how long to wait for the sender to connect"`
	Window        engine.Size   `zflow:"window" doc:"the receive region the sender writes into: it holds the batches in flight and those still held downstream, and one batch must fit in it"`
	Credit        int           `zflow:"credit" doc:"receives posted: batches the sender may have in flight"`
	Validate      string        `zflow:"validate" enum:"full,basic,none" doc:"check each batch received: full checks every offset (O(rows)), basic only buffer sizes, none trusts the sender"`
}

// RDMAOutSpec is the spec of the rdma_out sink.
func RDMAOutSpec() engine.Spec {
	return engine.Spec{
		Name:    "rdma_out",
		Kind:    engine.KindSink,
		Summary: "writes batches into another process's memory with one-sided RDMA WRITEs",
		Doc: "Connects when the first batch (or the end of an empty input) arrives, learns the receiver's " +
			"region and key over a TCP control channel, then WRITEs each batch's buffers straight from the run's " +
			"arena (registered once per extent) into the region and signals it with a WRITE_WITH_IMM; the batch " +
			"is held until that completes. Credit comes back as the receiver frees its region. Without an RDMA " +
			"NIC the emulated transport keeps the same semantics: on one host the region is mapped here and the " +
			"WRITE is a memory copy into it, across hosts the bytes go over the queue pair's TCP connection; the " +
			"copy ledger counts either, and buffers outside registered memory are copied into it first (counted).",
		Example: `type: rdma_out
inputs: [trades]
address: 127.0.0.1:7171`,
		MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &RDMAOutConfig{Device: "auto", ConnectTimeout: 10 * time.Second, Emulation: "auto"} },
		Build:     buildRDMAOut,
	}
}

// RDMAInSpec is the spec of the rdma_in source.
func RDMAInSpec() engine.Spec {
	return engine.Spec{
		Name:    "rdma_in",
		Kind:    engine.KindSource,
		Summary: "receives batches an rdma_out writes into this process's memory, without a copy here",
		Doc: "Accepts one rdma_out, registers a receive region (window bytes, on hugepages where the kernel " +
			"has them) and hands the sender its key; each batch's arrays point where the sender's WRITEs put " +
			"the bytes, and releasing the batch downstream frees its part of the region for the sender. A " +
			"stream that ends early (the sender died or failed) fails the run with the reason; this run's " +
			"failure reaches the sender.",
		Example: `type: rdma_in
listen: 127.0.0.1:7171
schema:
  - {name: id, type: int64}
  - {name: price, type: float64}`,
		NewConfig: func() any {
			return &RDMAInConfig{Device: "auto", AcceptTimeout: 60 * time.Second, Window: engine.Size(rdma.DefaultWindow),
				Credit: rdma.DefaultRecvs, Validate: "full"}
		},
		Build: buildRDMAIn,
	}
}

func init() {
	engine.Register(RDMAOutSpec())
	engine.Register(RDMAInSpec())
}
