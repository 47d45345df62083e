package operators

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/arrowcheck"
	"github.com/zflowdev/zflow/io/stream"
)

// TCPInConfig configures the tcp_in source.
type TCPInConfig struct {
	Listen        string        `zflow:"listen" required:"true" doc:"HOST:PORT to listen on for one tcp_out (or any Arrow IPC stream writer, with protocol arrow)" example:"127.0.0.1:7070"`
	Protocol      string        `zflow:"protocol" enum:"zflow,arrow" doc:"what the sender speaks: zflow (tcp_out's default) or a plain Arrow IPC stream"`
	Schema        []ColumnDef   `zflow:"schema" doc:"the columns the stream must have (checked when it starts; a difference fails the run naming it). Without it the source accepts the connection at compile time and takes the stream's schema, so compiling (zflow plan too) waits up to accept_timeout for the sender"`
	AcceptTimeout time.Duration `zflow:"accept_timeout" doc:"how long to wait for the sender to connect (default 60s)"`
	Credit        int           `zflow:"credit" doc:"protocol zflow: batches the sender may have in flight (default 4); a slow pipeline here holds the sender back"`
	Validate      string        `zflow:"validate" doc:"check each batch received: full checks every offset (O(rows)), basic only buffer sizes, none trusts the sender" enum:"full,basic,none"`
	Recv          string        `zflow:"recv" enum:"auto,read,uring_multishot" doc:"receive path once batches flow: read is read(2) of each message body into one pool buffer; uring_multishot is one io_uring multishot RECV into buffers of the pool in a provided buffer ring (Linux ≥ 6.0, in binaries that link it: the zflow command does), a body that lands whole in one buffer referenced where the kernel wrote it and one that crosses into the next copied (counted); it fails with the reason where the kernel or io_uring policy refuses; auto is read, which measured as fast on loopback (docs/stream.md)"`
}

// TCPInSpec is the spec of the tcp_in source.
func TCPInSpec() engine.Spec {
	return engine.Spec{
		Name:    "tcp_in",
		Kind:    engine.KindSource,
		Summary: "receives batches from another process over TCP (Arrow IPC)",
		Doc: "Accepts one connection and emits the batches it carries, read straight into the pool's " +
			"buffers. A connection that ends before the end of the stream fails the run (\"closed after " +
			"batch N of a stream that did not end\"), and so does a sender's error; with protocol zflow " +
			"this run's failure is sent back to the sender.",
		Example: `type: tcp_in
listen: 127.0.0.1:7070
schema:
  - {name: id, type: int64}
  - {name: name, type: string}`,
		NewConfig: func() any {
			return &TCPInConfig{Protocol: stream.ProtocolZflow, AcceptTimeout: 60 * time.Second, Credit: 4, Validate: "full", Recv: string(stream.RecvAuto)}
		},
		Build: buildTCPIn,
	}
}

func init() { engine.Register(TCPInSpec()) }

type tcpInFactory struct {
	cfg    TCPInConfig
	recv   stream.RecvMode
	schema *arrow.Schema
	mu     sync.Mutex
	early  *stream.Receiver // accepted at compile time (no schema:), for the first run
}

func buildTCPIn(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*TCPInConfig)
	errs := checkStreamSource(cfg.Listen, cfg.Validate, cfg.AcceptTimeout)
	switch cfg.Protocol {
	case stream.ProtocolZflow, stream.ProtocolArrow:
	default:
		errs = append(errs, engine.Errf("protocol", "want zflow or arrow, got %q", cfg.Protocol))
	}
	if cfg.Credit < 1 || cfg.Credit > 1<<20 {
		errs = append(errs, engine.Errf("credit", "want 1 to %d, got %d", 1<<20, cfg.Credit))
	}
	recv, err := stream.ParseRecvMode(cfg.Recv)
	if err != nil {
		errs = append(errs, engine.Errf("recv", "%v", err))
	} else if recv == stream.RecvUringMultishot {
		if err := stream.UringRecvSupport(); err != nil {
			errs = append(errs, engine.Errf("recv", "%v; use read or auto", err))
		}
	}
	f := &tcpInFactory{cfg: cfg, recv: recv}
	var err2 error
	f.early, f.schema, err2 = streamSchema(cfg.Schema, errs, func() (*stream.Receiver, *arrow.Schema, error) {
		// No declared columns: the stream says what they are.
		r, err := f.accept(context.Background(), memory.NewGoAllocator())
		if err != nil {
			return nil, nil, err
		}
		return r, r.Schema(), nil
	})
	if err2 != nil {
		return nil, err2
	}
	return f, nil
}

// accept listens, accepts one sender and reads the start of its stream.
func (f *tcpInFactory) accept(ctx context.Context, mem memory.Allocator) (*stream.Receiver, error) {
	conn, err := acceptOne(ctx, "tcp_in", f.cfg.Listen, f.cfg.AcceptTimeout)
	if err != nil {
		return nil, err
	}
	r, err := stream.NewReceiver(ctx, conn, stream.RecvOptions{Protocol: f.cfg.Protocol, Alloc: mem, Credit: f.cfg.Credit, Recv: f.recv})
	if err != nil {
		return nil, fmt.Errorf("tcp_in: %w", err)
	}
	return r, nil
}

func (f *tcpInFactory) Schema() *arrow.Schema { return f.schema }

func (f *tcpInFactory) Describe() string {
	how := "declared columns"
	if len(f.cfg.Schema) == 0 {
		how = "the stream's schema, read at compile time"
	}
	why := map[stream.RecvMode]string{
		stream.RecvAuto:           "read: uring_multishot measured no faster on loopback",
		stream.RecvRead:           "read(2) of each body into one pool buffer",
		stream.RecvUringMultishot: "io_uring multishot RECV into provided pool buffers, bodies referenced where they land whole",
	}[f.recv]
	return fmt.Sprintf("listen %s (protocol %s, %d columns, %s; recv %s: %s)", f.cfg.Listen, f.cfg.Protocol, f.schema.NumFields(), how, f.recv, why)
}

func (f *tcpInFactory) New(ic *engine.InstanceContext) (any, error) {
	f.mu.Lock()
	early := f.early
	f.early = nil
	f.mu.Unlock()
	return &tcpInSource{f: f, ic: ic, r: early}, nil
}

type tcpInSource struct {
	f  *tcpInFactory
	ic *engine.InstanceContext
	r  *stream.Receiver
}

func (s *tcpInSource) Run(ctx context.Context, out engine.Emitter) (err error) {
	if s.r == nil {
		if s.r, err = s.f.accept(ctx, s.ic.Alloc); err != nil {
			return err
		}
	} else {
		s.r.SetAlloc(s.ic.Alloc)
	}
	stopped := false
	defer func() {
		st := s.r.Stats()
		// The kernel copies what it received into the pool's buffers; a
		// body that crossed two provided buffers (uring_multishot) was
		// copied once more, into one buffer.
		s.ic.Ledger.Copied("socket receive (kernel copy)", st.Bytes)
		s.ic.Ledger.Copied("socket receive (body split across provided buffers)", st.Wire.SplitBytes)
		s.ic.Ledger.Copied("socket receive (misaligned body)", st.Wire.MisalignedBytes)
		switch {
		case stopped:
			// Tell the sender why the rest of its stream was not read.
			s.r.Fail(fmt.Errorf("the receiving pipeline needed no more batches after batch %d (a limit downstream of tcp_in); the rest of the stream was not read", st.Batches))
		case errors.Is(err, context.Canceled):
			s.r.Fail(errors.New("the receiving run failed or was cancelled"))
		case err != nil:
			s.r.Fail(err)
		default:
			s.r.Close()
		}
	}()
	if err := checkStreamColumns(s.f.schema, s.r.Schema()); err != nil {
		return fmt.Errorf("tcp_in: %s: %w", s.f.cfg.Listen, err)
	}
	if err := s.r.Start(); err != nil {
		return fmt.Errorf("tcp_in: %w", err)
	}
	s.ic.SetAttributes(engine.AttrIOBackend.String("net:"+string(s.r.RecvMode())), engine.AttrIOBackendReason.String(s.r.RecvReason()))
	if s.ic.Logger != nil {
		s.ic.Logger.Info("tcp_in receiving", "listen", s.f.cfg.Listen, "recv", string(s.r.RecvMode()), "reason", s.r.RecvReason())
	}
	traced, _ := out.(engine.TracedEmitter)
	for {
		rec, carrier, err := s.r.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tcp_in: %w", err)
		}
		if verr := validateBatch(s.f.cfg.Validate, rec); verr != nil {
			rec.Release()
			return fmt.Errorf("tcp_in: batch %d from %s is malformed: %w", s.r.Stats().Batches, s.f.cfg.Listen, verr)
		}
		b, err := conformBatch(s.f.schema, rec)
		rec.Release()
		if err != nil {
			return fmt.Errorf("tcp_in: batch %d: %w", s.r.Stats().Batches, err)
		}
		if traced != nil {
			err = traced.EmitTraced(b, engine.TraceCarrier(carrier))
		} else {
			err = out.Emit(b)
		}
		if err != nil {
			if errors.Is(err, engine.ErrStop) {
				stopped = true
				return nil
			}
			return err
		}
		if err := s.r.Done(); err != nil {
			return fmt.Errorf("tcp_in: %w", err)
		}
	}
}

// acceptOne listens on addr for op, accepts one sender within timeout and
// stops listening.
func acceptOne(ctx context.Context, op, addr string, timeout time.Duration) (*net.TCPConn, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", op, addr, err)
	}
	defer l.Close()
	conn, err := stream.Accept(ctx, l.(*net.TCPListener), timeout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return conn, nil
}

// checkStreamSource checks what the network sources share: the listen
// address, validate and accept_timeout.
func checkStreamSource(listen, validate string, accept time.Duration) []error {
	var errs []error
	if _, _, err := net.SplitHostPort(listen); err != nil {
		errs = append(errs, engine.Errf("listen", "want HOST:PORT, got %q: %v", listen, err))
	}
	switch validate {
	case "full", "basic", "none":
	default:
		errs = append(errs, engine.Errf("validate", "want full, basic or none, got %q", validate))
	}
	if accept <= 0 {
		errs = append(errs, engine.Errf("accept_timeout", "must be positive, got %v", accept))
	}
	return errs
}

// checkStreamColumns compares the declared (or compile-time) columns with
// the stream's and names the first difference.
func checkStreamColumns(want, got *arrow.Schema) error {
	if want.NumFields() != got.NumFields() {
		return fmt.Errorf("the stream has %d columns (%s), the source declares %d (%s)", got.NumFields(), columnList(got), want.NumFields(), columnList(want))
	}
	for i := range want.NumFields() {
		w, g := want.Field(i), got.Field(i)
		if w.Name != g.Name || !arrow.TypeEqual(w.Type, g.Type) {
			return fmt.Errorf("column %d of the stream is %s %s, the source declares %s %s", i+1, g.Name, g.Type, w.Name, w.Type)
		}
	}
	return nil
}

func columnList(s *arrow.Schema) string {
	out := ""
	for i, f := range s.Fields() {
		if i > 0 {
			out += ", "
		}
		out += f.Name + " " + f.Type.String()
	}
	return out
}

// validateBatch checks rec as a source's validate parameter says: full
// checks every offset (O(rows)), basic only buffer sizes, none nothing.
func validateBatch(mode string, rec arrow.RecordBatch) error {
	switch mode {
	case "full":
		return arrowcheck.RecordFull(rec)
	case "basic":
		return array.ValidateRecord(rec)
	}
	return nil
}

// streamSchema is a stream source's schema: its declared columns, or,
// without them, the schema of the stream open starts at compile time,
// which the source keeps for its first run (early). errs are the
// parameter errors found so far; with any, nothing is opened.
func streamSchema[T any](cols []ColumnDef, errs []error, open func() (T, *arrow.Schema, error)) (early T, schema *arrow.Schema, err error) {
	if len(cols) > 0 {
		s, err := columnsSchema("schema", cols)
		if err != nil {
			errs = append(errs, err)
		}
		schema = s
	}
	if len(errs) > 0 {
		return early, nil, errors.Join(errs...)
	}
	if schema != nil {
		return early, schema, nil
	}
	early, s, err := open()
	if err != nil {
		return early, nil, engine.Errf("schema", "not given, so the stream's schema was to be read at compile time: %v", err)
	}
	return early, stripMeta(s), nil
}
