package operators

import (
	"time"

	"github.com/zflowdev/zflow/engine"
)

// ShmOutConfig configures the shm_out sink.
type ShmOutConfig struct {
	Path      string        `zflow:"path" required:"true" doc:"the shared segment: a device-DAX device (/dev/dax0.0) or a file on tmpfs or hugetlbfs, made (mode 0600) when it does not exist" example:"/dev/shm/zflow-trades"`
	Channel   string        `zflow:"channel" required:"true" doc:"the channel's name in the segment (up to 40 bytes); shm_in sources join it by name"`
	Consumers int           `zflow:"consumers" doc:"how many shm_in sources read the channel, each getting every batch (1 to 8); the run ends once all of them acknowledged every batch"`
	Size      engine.Size   `zflow:"size" doc:"the size of the segment when this sink makes it"`
	Capacity  int           `zflow:"capacity" doc:"batches each consumer may hold unacknowledged before this sink waits (backpressure)"`
	Wait      time.Duration `zflow:"wait" doc:"how long to wait for the consumers to attach, acknowledge the last batch, or be replaced after dying"`
	Resume    string        `zflow:"resume" enum:"replay,append" doc:"when this run takes over a channel whose producer died (or failed) mid-stream: replay skips the rows that producer published, for an input read again from its start in the same order (a rerun of the same pipeline), so every consumer gets each row once; append publishes all of this run's rows after them (an input that goes on rather than starts again)"`
}

// ShmInConfig configures the shm_in source.
type ShmInConfig struct {
	Path     string        `zflow:"path" required:"true" doc:"the shared segment an shm_out sink (or arena: cxl) made" example:"/dev/shm/zflow-trades"`
	Channel  string        `zflow:"channel" required:"true" doc:"the channel to join"`
	Schema   []ColumnDef   `zflow:"schema" doc:"the columns the channel must carry (checked when the run joins it). Without it the channel's schema gives the columns at compile time, so compiling (zflow plan too) waits up to wait for the channel"`
	Wait     time.Duration `zflow:"wait" doc:"how long to wait for the segment and the channel, and for a producer that died to be replaced"`
	Validate string        `zflow:"validate" enum:"full,basic,none" doc:"check each batch: full checks every offset (O(rows)), basic only buffer sizes, none trusts the producer"`
	Ack      string        `zflow:"ack" enum:"release,commit" doc:"when batches are acknowledged to the producer: release, as soon as the pipeline is done with each (its memory is reused at once); commit, only once this run's sinks committed their output, so that a run that dies or fails leaves the whole stream to the next one and its output holds every row exactly once (the producer keeps the stream in the segment until then: its capacity and size must hold it)"`
}

// ShmOutSpec is the spec of the shm_out sink.
func ShmOutSpec() engine.Spec {
	return engine.Spec{
		Name:    "shm_out",
		Kind:    engine.KindSink,
		Summary: "hands batches to other processes through a shared segment, by reference where they already live in it",
		Doc: "Publishes each batch's descriptor (its buffers' offsets in the segment) on a channel every consumer " +
			"reads in order; a consumer's arrays point into its own mapping of the segment, so nothing is " +
			"copied when the run's memory is the same segment (settings.memory: {arena: cxl, path: …}). " +
			"Buffers that live elsewhere are copied into the segment once, and the copy ledger says so. A " +
			"batch's memory is held until every consumer acknowledged it. A consumer that dies is replaced by " +
			"the next shm_in to join, which gets again what it had not acknowledged; a producer that dies is " +
			"replaced by the next run of this sink, which (resume: replay) skips the rows it had published (docs/shm.md).",
		Example: `type: shm_out
inputs: [trades]
path: /dev/shm/zflow-trades
channel: trades
consumers: 2`,
		MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any {
			return &ShmOutConfig{Consumers: 1, Size: engine.Size(256 << 20), Capacity: 16, Wait: 60 * time.Second, Resume: "replay"}
		},
		Build: buildShmOut,
	}
}

// ShmInSpec is the spec of the shm_in source.
func ShmInSpec() engine.Spec {
	return engine.Spec{
		Name:    "shm_in",
		Kind:    engine.KindSource,
		Summary: "receives batches from another process through a shared segment, without a copy",
		Doc: "Joins a channel an shm_out sink made and emits its batches, whose arrays point into this " +
			"process's mapping of the segment; each batch is acknowledged when the pipeline releases it, or " +
			"(ack: commit) once the run's output is committed, for output exactly once across crashes. The " +
			"columns are declared (schema:) or come from the channel at compile time, when compiling waits up to wait for it. A producer " +
			"that fails stops this run with its error; one that dies is waited for (wait) to be replaced.",
		Example: `type: shm_in
path: /dev/shm/zflow-trades
channel: trades
wait: 10s`,
		NewConfig: func() any { return &ShmInConfig{Wait: 10 * time.Second, Validate: "full", Ack: "release"} },
		Build:     buildShmIn,
	}
}

func init() {
	engine.Register(ShmOutSpec())
	engine.Register(ShmInSpec())
}
