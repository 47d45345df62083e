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
	"github.com/zflowdev/zflow/io/rdma"
	"github.com/zflowdev/zflow/io/stream"
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

// rdmaSys is where the verbs devices are listed (tests point it elsewhere).
var rdmaSys = "/sys"

func chooseRDMA(device string) (rdma.Backend, error) {
	b, err := rdma.Choose(device, rdmaSys)
	if err != nil {
		return b, engine.Errf("device", "%v", err)
	}
	return b, nil
}

type rdmaOutFactory struct {
	cfg     RDMAOutConfig
	backend rdma.Backend
	schema  *arrow.Schema
}

func buildRDMAOut(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*RDMAOutConfig)
	var errs []error
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		errs = append(errs, engine.Errf("address", "want HOST:PORT, got %q: %v", cfg.Address, err))
	}
	if cfg.ConnectTimeout <= 0 {
		errs = append(errs, engine.Errf("connect_timeout", "must be positive, got %v", cfg.ConnectTimeout))
	}
	switch cfg.Emulation {
	case "auto", "mapped", "tcp":
	default:
		errs = append(errs, engine.Errf("emulation", "want auto, mapped or tcp, got %q", cfg.Emulation))
	}
	backend, err := chooseRDMA(cfg.Device)
	if err != nil {
		errs = append(errs, err)
	}
	schema, err := checkSinkInput(bc)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &rdmaOutFactory{cfg: cfg, backend: backend, schema: schema}, nil
}

func (f *rdmaOutFactory) Schema() *arrow.Schema { return nil }

func (f *rdmaOutFactory) Describe() string {
	return fmt.Sprintf("%s (%s: %s)", f.cfg.Address, f.backend.Name, f.backend.Reason)
}

func (f *rdmaOutFactory) New(ic *engine.InstanceContext) (any, error) {
	return &rdmaOutSink{f: f, ic: ic}, nil
}

type rdmaOutSink struct {
	f      *rdmaOutFactory
	ic     *engine.InstanceContext
	snd    *rdma.Sender
	failed bool
	done   bool
}

func (s *rdmaOutSink) open(ctx context.Context) error {
	if s.snd != nil {
		return nil
	}
	snd, err := rdma.Dial(ctx, s.f.cfg.Address, s.f.cfg.ConnectTimeout, s.f.schema,
		rdma.SendOptions{Alloc: s.ic.Alloc, NoMap: s.f.cfg.Emulation == "tcp"})
	if err != nil {
		return fmt.Errorf("rdma_out: %w", err)
	}
	s.snd = snd
	mapped, how := snd.Mapped()
	if !mapped && s.f.cfg.Emulation == "mapped" {
		snd.Abort(fmt.Errorf("the sender could not map this receiver's region (emulation: mapped): %s", how))
		return fmt.Errorf("rdma_out: %s: emulation: mapped, but %s", s.f.cfg.Address, how)
	}
	s.ic.SetIO(s.f.backend.Name, s.f.backend.Reason+"; "+how)
	if s.ic.Logger != nil {
		s.ic.Logger.Info("rdma_out connected", "address", s.f.cfg.Address, "backend", s.f.backend.Name, "reason", s.f.backend.Reason, "transport", how)
	}
	return nil
}

func (s *rdmaOutSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	if err := s.snd.Write(ctx, in, [stream.CarrierSize]byte(engine.InjectBatchTrace(ctx))); err != nil {
		s.failed = true
		return fmt.Errorf("rdma_out: %s: %w", s.f.cfg.Address, err)
	}
	return nil
}

func (s *rdmaOutSink) Close(ctx context.Context) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	err := s.snd.Close(ctx)
	s.account()
	if err != nil {
		return fmt.Errorf("rdma_out: %s: %w", s.f.cfg.Address, err)
	}
	return nil
}

// account puts what the emulated DMA and the staging copied in the ledger.
func (s *rdmaOutSink) account() {
	if s.done || s.snd == nil {
		return
	}
	s.done = true
	st := s.snd.Stats()
	s.ic.Ledger.Copied("rdma write (emulated: the CPU copies what a NIC would DMA)", st.Placed)
	s.ic.Ledger.Copied("rdma write (emulated over TCP: kernel copy)", st.Wire)
	s.ic.Ledger.Copied("rdma staging (buffer outside registered memory)", st.Staged)
	if s.ic.Logger != nil {
		s.ic.Logger.Info("rdma_out done", "batches", st.Batches, "rows", st.Rows, "bytes", st.Bytes,
			"placed", st.Placed, "wire", st.Wire, "staged", st.Staged)
	}
}

func (s *rdmaOutSink) Commit() error { return nil }

func (s *rdmaOutSink) Abort() {
	if s.snd == nil || s.done {
		return
	}
	cause := errors.New("the sending run failed or was cancelled")
	s.snd.Abort(cause)
	s.account()
}

type rdmaInFactory struct {
	cfg     RDMAInConfig
	backend rdma.Backend
	schema  *arrow.Schema
	mu      sync.Mutex
	early   *rdma.Receiver // accepted at compile time (no schema:), for the first run
}

func buildRDMAIn(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*RDMAInConfig)
	errs := checkStreamSource(cfg.Listen, cfg.Validate, cfg.AcceptTimeout)
	if cfg.Window < 1<<20 || cfg.Window > 32<<30 {
		errs = append(errs, engine.Errf("window", "want 1MiB to 32GiB, got %d bytes", int64(cfg.Window)))
	}
	if cfg.Credit < 1 || cfg.Credit > 4096 {
		errs = append(errs, engine.Errf("credit", "want 1 to 4096, got %d", cfg.Credit))
	}
	backend, err := chooseRDMA(cfg.Device)
	if err != nil {
		errs = append(errs, err)
	}
	f := &rdmaInFactory{cfg: cfg, backend: backend}
	if len(cfg.Schema) > 0 {
		s, err := columnsSchema("schema", cfg.Schema)
		if err != nil {
			errs = append(errs, err)
		}
		f.schema = s
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if f.schema == nil {
		r, err := f.accept(context.Background(), memory.NewGoAllocator())
		if err != nil {
			return nil, engine.Errf("schema", "not given, so the stream's schema was to be read at compile time: %v", err)
		}
		f.early, f.schema = r, stripMeta(r.Schema())
	}
	return f, nil
}

func (f *rdmaInFactory) accept(ctx context.Context, mem memory.Allocator) (*rdma.Receiver, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", f.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("rdma_in: listen on %s: %w", f.cfg.Listen, err)
	}
	defer l.Close()
	conn, err := rdma.Accept(ctx, l.(*net.TCPListener), f.cfg.AcceptTimeout)
	if err != nil {
		return nil, fmt.Errorf("rdma_in: %w", err)
	}
	r, err := rdma.NewReceiver(ctx, conn, rdma.RecvOptions{Window: int(f.cfg.Window), Recvs: f.cfg.Credit, Alloc: mem})
	if err != nil {
		return nil, fmt.Errorf("rdma_in: %w", err)
	}
	return r, nil
}

func (f *rdmaInFactory) Schema() *arrow.Schema { return f.schema }

func (f *rdmaInFactory) Describe() string {
	how := "declared columns"
	if len(f.cfg.Schema) == 0 {
		how = "the stream's schema, read at compile time"
	}
	return fmt.Sprintf("listen %s (%d columns, %s; %s: %s; window %s, credit %d)", f.cfg.Listen, f.schema.NumFields(), how,
		f.backend.Name, f.backend.Reason, f.cfg.Window, f.cfg.Credit)
}

func (f *rdmaInFactory) New(ic *engine.InstanceContext) (any, error) {
	f.mu.Lock()
	early := f.early
	f.early = nil
	f.mu.Unlock()
	return &rdmaInSource{f: f, ic: ic, r: early}, nil
}

type rdmaInSource struct {
	f  *rdmaInFactory
	ic *engine.InstanceContext
	r  *rdma.Receiver
}

func (s *rdmaInSource) Run(ctx context.Context, out engine.Emitter) (err error) {
	if s.r == nil {
		if s.r, err = s.f.accept(ctx, s.ic.Alloc); err != nil {
			return err
		}
	}
	stopped := false
	defer func() {
		switch {
		case stopped:
			s.r.Fail(fmt.Errorf("the receiving pipeline needed no more batches after batch %d (a limit downstream of rdma_in); the rest of the stream was not read", s.r.Stats().Batches))
		case errors.Is(err, context.Canceled):
			s.r.Fail(errors.New("the receiving run failed or was cancelled"))
		case err != nil:
			s.r.Fail(err)
		default:
			s.r.Close()
		}
		if st := s.r.Stats(); st.Received > 0 {
			s.ic.Ledger.Copied("rdma receive (emulated over TCP: kernel copy into the region)", st.Received)
		}
	}()
	if err := checkStreamColumns(s.f.schema, s.r.Schema()); err != nil {
		return fmt.Errorf("rdma_in: %s: %w", s.f.cfg.Listen, err)
	}
	_, how := s.r.Mapped()
	s.ic.SetIO(s.f.backend.Name, s.f.backend.Reason+"; "+how)
	traced, _ := out.(engine.TracedEmitter)
	for {
		rec, carrier, err := s.r.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("rdma_in: %s: %w", s.f.cfg.Listen, err)
		}
		var verr error
		switch s.f.cfg.Validate {
		case "full":
			verr = arrowcheck.RecordFull(rec)
		case "basic":
			verr = array.ValidateRecord(rec)
		}
		if verr != nil {
			rec.Release()
			return fmt.Errorf("rdma_in: batch %d from %s is malformed: %w", s.r.Stats().Batches, s.f.cfg.Listen, verr)
		}
		// Read from the buffers' addresses, not assumed: what lies in the
		// region came by reference; anything else arrow-go made.
		var in, outside int64
		for _, c := range rec.Columns() {
			regionBytes(s.r, c.Data(), &in, &outside)
		}
		s.ic.Ledger.Referenced("rdma receive region", in)
		if outside > 0 {
			s.ic.Ledger.Copied("decoded outside the rdma region", outside)
		}
		b, err := conformBatch(s.f.schema, rec)
		rec.Release()
		if err != nil {
			return fmt.Errorf("rdma_in: batch %d: %w", s.r.Stats().Batches, err)
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
	}
}

func regionBytes(r *rdma.Receiver, d arrow.ArrayData, in, out *int64) {
	for _, b := range d.Buffers() {
		if b == nil || b.Len() == 0 {
			continue
		}
		if r.Contains(b.Bytes()) {
			*in += int64(b.Len())
		} else {
			*out += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		regionBytes(r, c, in, out)
	}
}
