package engine

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"go.opentelemetry.io/otel/trace"
)

// TraceCarrierSize is the size of a TraceCarrier on the wire.
const TraceCarrierSize = 26

// TraceCarrier is the trace context of one batch where the batch leaves the
// process: the network transport's frame header and the shared-memory
// channel's descriptor carry these bytes next to the batch's location, so
// the consumer process's spans link to the producer's and one trace spans
// both. The layout is the W3C traceparent's fields in binary, fixed size so
// it fits a descriptor slot:
//
//	byte 0       version, 0
//	bytes 1–16   trace-id
//	bytes 17–24  parent-id (the producer's batch span)
//	byte 25      trace-flags (bit 0: sampled)
//
// All zero means "no trace context" (the batch was not traced).
type TraceCarrier [TraceCarrierSize]byte

// InjectBatchTrace returns the carrier of the span in ctx: in a sink's Write
// or a transform's Process, that is the batch's own span when the batch is
// traced (settings.trace.batches), else the operator instance's span. Without
// a valid span it returns the zero carrier.
func InjectBatchTrace(ctx context.Context) TraceCarrier {
	return CarrierOf(trace.SpanContextFromContext(ctx))
}

// CarrierOf encodes sc.
func CarrierOf(sc trace.SpanContext) TraceCarrier {
	var c TraceCarrier
	if !sc.IsValid() {
		return c
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	copy(c[1:17], tid[:])
	copy(c[17:25], sid[:])
	c[25] = byte(sc.TraceFlags() & trace.FlagsSampled)
	return c
}

// IsZero tells whether c carries no trace context.
func (c TraceCarrier) IsZero() bool { return c == TraceCarrier{} }

// SpanContext decodes c into a remote span context. The zero carrier gives
// an invalid span context and no error; anything else malformed is an error
// that says what is wrong.
func (c TraceCarrier) SpanContext() (trace.SpanContext, error) {
	if c.IsZero() {
		return trace.SpanContext{}, nil
	}
	if c[0] != 0 {
		return trace.SpanContext{}, fmt.Errorf("engine: trace carrier: version %d, want 0", c[0])
	}
	if c[25]&^byte(trace.FlagsSampled) != 0 {
		return trace.SpanContext{}, fmt.Errorf("engine: trace carrier: unknown trace flags %#02x", c[25])
	}
	var tid trace.TraceID
	var sid trace.SpanID
	copy(tid[:], c[1:17])
	copy(sid[:], c[17:25])
	if !tid.IsValid() {
		return trace.SpanContext{}, fmt.Errorf("engine: trace carrier: all-zero trace id")
	}
	if !sid.IsValid() {
		return trace.SpanContext{}, fmt.Errorf("engine: trace carrier: all-zero parent id")
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(c[25]), Remote: true,
	}), nil
}

// ParseTraceCarrier reads a carrier from the first TraceCarrierSize bytes
// of b (a descriptor slot or a frame header field) and checks it.
func ParseTraceCarrier(b []byte) (TraceCarrier, error) {
	var c TraceCarrier
	if len(b) < TraceCarrierSize {
		return c, fmt.Errorf("engine: trace carrier: %d bytes, want %d", len(b), TraceCarrierSize)
	}
	copy(c[:], b)
	if _, err := c.SpanContext(); err != nil {
		return TraceCarrier{}, err
	}
	return c, nil
}

// Traceparent is c in the W3C traceparent header form, for text transports;
// "" for the zero carrier.
func (c TraceCarrier) Traceparent() string {
	if c.IsZero() {
		return ""
	}
	return fmt.Sprintf("%02x-%s-%s-%02x", c[0], hex.EncodeToString(c[1:17]), hex.EncodeToString(c[17:25]), c[25])
}

// TracedEmitter is implemented by the engine's Emitter. A source that
// receives batches from another process (network, shared memory) emits
// them with the producer's carrier: when batch tracing is on, the batch
// gets a span linked to the producer's batch span, and is traced through
// this process's operators too (whatever the local sampling fraction, if
// the producer sampled it).
type TracedEmitter interface {
	EmitTraced(b arrow.RecordBatch, from TraceCarrier) error
}

// EmitTraced is Emit for a batch that came with a producer's trace carrier.
// A malformed carrier is ignored (the batch is still emitted); check it
// with ParseTraceCarrier where it is read.
func (e *emitter) EmitTraced(b arrow.RecordBatch, from TraceCarrier) error {
	if e.bt == nil || b == nil {
		return e.Emit(b)
	}
	sc, err := from.SpanContext()
	if err != nil || !sc.IsValid() || !sc.IsSampled() {
		return e.Emit(b)
	}
	bt := e.bt
	cur, src := bt.cur, bt.source
	bt.seq++
	s := bt.begin(&sc, b.NumRows(), BatchBytes(b)) // sets bt.cur: the batch travels with it
	bt.source = false                              // the batch has its span already: do not sample it again
	defer func() { bt.source = src }()
	err = e.Emit(b)
	bt.end(s, nil, false)
	bt.cur = cur // a transform emitting mid-Process keeps its input's lineage
	return err
}
