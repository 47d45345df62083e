//go:build linux

package operators

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/rdma"
	"github.com/zflowdev/zflow/io/stream"
)

// rdmaSys is where the verbs devices are listed (tests point it elsewhere).
var rdmaSys = "/sys"

// chooseRDMA picks the provider for device near the run's memory (its
// bound node, if any).
func chooseRDMA(bc *engine.BuildContext, device string) (rdma.Backend, error) {
	node := -1
	if m := bc.Settings.Memory; m.Bind {
		node = m.Node
	}
	b, err := rdma.Choose(device, rdmaSys, node)
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
	backend, err := chooseRDMA(bc, cfg.Device)
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
		rdma.SendOptions{Alloc: s.ic.Alloc, NoMap: s.f.cfg.Emulation == "tcp", Device: s.f.backend.Device})
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
	backend, err := chooseRDMA(bc, cfg.Device)
	if err != nil {
		errs = append(errs, err)
	}
	f := &rdmaInFactory{cfg: cfg, backend: backend}
	var err2 error
	f.early, f.schema, err2 = streamSchema(cfg.Schema, errs, func() (*rdma.Receiver, *arrow.Schema, error) {
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

func (f *rdmaInFactory) accept(ctx context.Context, mem memory.Allocator) (*rdma.Receiver, error) {
	conn, err := acceptOne(ctx, "rdma_in", f.cfg.Listen, f.cfg.AcceptTimeout)
	if err != nil {
		return nil, err
	}
	r, err := rdma.NewReceiver(ctx, conn, rdma.RecvOptions{Window: int(f.cfg.Window), Recvs: f.cfg.Credit, Alloc: mem, Device: f.backend.Device})
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
	// The region is this operator's memory: it holds what is in flight
	// and what the pipeline still holds, until the last batch is released.
	if err := s.ic.Budget.Reserve(s.r.Window()); err != nil {
		s.r.Fail(fmt.Errorf("the receiving run's memory budget refused the %s receive region", engine.Size(s.r.Window())))
		return fmt.Errorf("rdma_in: window %s: %w", engine.Size(s.r.Window()), err)
	}
	s.r.OnFree(func() { s.ic.Budget.Unreserve(s.r.Window()) })
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
		if verr := validateBatch(s.f.cfg.Validate, rec); verr != nil {
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
