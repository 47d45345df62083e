package operators

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/netzc"
	"github.com/zflowdev/zflow/io/stream"
)

// TCPOutConfig configures the tcp_out sink.
type TCPOutConfig struct {
	Address        string        `zflow:"address" required:"true" doc:"HOST:PORT of the tcp_in source to send to" example:"127.0.0.1:7070"`
	Protocol       string        `zflow:"protocol" enum:"zflow,arrow" doc:"zflow: Arrow IPC messages in frames with a handshake, credit-based flow control, sequence numbers, trace context and a checked end (docs/stream.md); arrow: a plain Arrow IPC stream any Arrow library reads"`
	Send           string        `zflow:"send" enum:"auto,copy,msg_zerocopy,uring_zc" doc:"send path: copy is writev from the batch's buffers; msg_zerocopy sends them with MSG_ZEROCOPY and releases them on the kernel's completion (Linux); uring_zc sends them with io_uring SENDMSG_ZC (Linux ≥ 6.1; SEND_ZC per buffer on 6.0) and releases them on the kernel's notification, in binaries that link it (the zflow command does), failing with the reason where the kernel or io_uring policy refuses; auto uses msg_zerocopy for messages of 64 KiB and more where the kernel allows, else copy, and turns to copy for good once the kernel has copied each of its first 8 zero-copy sends (a receiver on the same host)"`
	ConnectTimeout time.Duration `zflow:"connect_timeout" doc:"keep trying to connect, with exponential back-off, this long (default 10s)"`
	FixedBuffers   bool          `zflow:"fixed_buffers" doc:"send uring_zc only: register the run's arena extents with the ring (IORING_REGISTER_BUFFERS) and send a buffer that lies in them with IORING_RECVSEND_FIXED_BUF, which saves the kernel pinning its pages per request; a list is cut into runs of buffers in one extent (SENDMSG_ZC takes registered buffers in newer kernels, 6.18 here; older ones get SEND_ZC per buffer). Off by default: on loopback it measured no faster (docs/stream.md). Without an arena pool (arena: heap) it logs why and sends as without"`
}

// TCPOutSpec is the spec of the tcp_out sink.
func TCPOutSpec() engine.Spec {
	return engine.Spec{
		Name:    "tcp_out",
		Kind:    engine.KindSink,
		Summary: "sends batches to another process over TCP (Arrow IPC, zero-copy sends where possible)",
		Doc: "Connects when the first batch (or the end of an empty input) arrives. Record batch bodies go " +
			"out by scatter-gather straight from the batch's buffers, which are held until the kernel is done " +
			"with them. With protocol zflow the receiver's errors reach this run and the end of the stream is " +
			"acknowledged after the receiver checked the row count; a failing run sends the receiver an error. " +
			"The bytes the kernel copied are counted in the copy ledger (on loopback, all of them).",
		Example: `type: tcp_out
inputs: [trades]
address: 127.0.0.1:7070`,
		MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any {
			return &TCPOutConfig{Protocol: stream.ProtocolZflow, Send: string(netzc.Auto), ConnectTimeout: 10 * time.Second}
		},
		Build: buildTCPOut,
	}
}

func init() { engine.Register(TCPOutSpec()) }

type tcpOutFactory struct {
	cfg    TCPOutConfig
	mode   netzc.Mode
	schema *arrow.Schema
}

func buildTCPOut(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*TCPOutConfig)
	var errs []error
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		errs = append(errs, engine.Errf("address", "want HOST:PORT, got %q: %v", cfg.Address, err))
	}
	switch cfg.Protocol {
	case stream.ProtocolZflow, stream.ProtocolArrow:
	default:
		errs = append(errs, engine.Errf("protocol", "want zflow or arrow, got %q", cfg.Protocol))
	}
	mode, err := netzc.ParseMode(cfg.Send)
	if err != nil {
		errs = append(errs, engine.Errf("send", "%v", err))
	} else if mode == netzc.UringZC {
		if err := netzc.UringZCSupport(); err != nil {
			errs = append(errs, engine.Errf("send", "%v; use msg_zerocopy, copy or auto", err))
		}
	}
	if cfg.FixedBuffers && mode != netzc.UringZC {
		errs = append(errs, engine.Errf("fixed_buffers", "registered buffers are for send: uring_zc, not %s", cfg.Send))
	}
	if cfg.ConnectTimeout <= 0 {
		errs = append(errs, engine.Errf("connect_timeout", "must be positive, got %v", cfg.ConnectTimeout))
	}
	schema, err := checkSinkInput(bc)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &tcpOutFactory{cfg: cfg, mode: mode, schema: schema}, nil
}

func (f *tcpOutFactory) Schema() *arrow.Schema { return nil }

func (f *tcpOutFactory) Describe() string {
	why := map[netzc.Mode]string{
		netzc.Auto:        fmt.Sprintf("msg_zerocopy for messages ≥ %d KiB where the kernel accepts SO_ZEROCOPY, else copy (writev)", netzc.DefaultThreshold>>10),
		netzc.Copy:        "writev straight from the batch's buffers",
		netzc.MsgZeroCopy: "MSG_ZEROCOPY, buffers released on the kernel's completion",
		netzc.UringZC:     "io_uring SENDMSG_ZC, buffers released on the kernel's notification",
	}[f.mode]
	if f.cfg.FixedBuffers {
		why += ", with the arena's extents registered (IORING_RECVSEND_FIXED_BUF)"
	}
	return fmt.Sprintf("%s (protocol %s, send %s: %s)", f.cfg.Address, f.cfg.Protocol, f.mode, why)
}

func (f *tcpOutFactory) New(ic *engine.InstanceContext) (any, error) {
	return &tcpOutSink{f: f, ic: ic}, nil
}

type tcpOutSink struct {
	f      *tcpOutFactory
	ic     *engine.InstanceContext
	snd    *stream.Sender
	failed bool // a write failed: the stream is broken
	done   bool
}

// open connects and starts the stream.
func (s *tcpOutSink) open(ctx context.Context) error {
	if s.snd != nil {
		return nil
	}
	conn, err := stream.Dial(ctx, s.f.cfg.Address, s.f.cfg.ConnectTimeout)
	if err != nil {
		return fmt.Errorf("tcp_out: %w", err)
	}
	opts := stream.SendOptions{Protocol: s.f.cfg.Protocol, Send: s.f.mode, Alloc: s.ic.Alloc}
	if s.f.cfg.FixedBuffers {
		if ex, ok := s.ic.Alloc.(buffers.Extenter); ok {
			opts.ZeroCopy.Registered = ex.Extents()
		} else if s.ic.Logger != nil {
			s.ic.Logger.Warn("tcp_out: fixed_buffers asked for, but the run's memory is not an arena (nothing to register); sending without", "address", s.f.cfg.Address)
		}
	}
	snd, err := stream.NewSender(ctx, conn, s.f.schema, opts)
	if err != nil {
		return fmt.Errorf("tcp_out: %s: %w", s.f.cfg.Address, err)
	}
	s.snd = snd
	s.ic.SetAttributes(engine.AttrIOBackend.String("net:"+string(snd.Mode())), engine.AttrIOBackendReason.String(snd.Reason()))
	if s.ic.Logger != nil {
		s.ic.Logger.Info("tcp_out connected", "address", s.f.cfg.Address, "protocol", s.f.cfg.Protocol, "send", string(snd.Mode()), "reason", snd.Reason())
	}
	return nil
}

func (s *tcpOutSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	if err := s.snd.Write(ctx, in, [stream.CarrierSize]byte(engine.InjectBatchTrace(ctx))); err != nil {
		s.failed = true
		return fmt.Errorf("tcp_out: %w", err)
	}
	return nil
}

func (s *tcpOutSink) Close(ctx context.Context) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	err := s.snd.Close(ctx)
	s.account()
	if err != nil {
		return fmt.Errorf("tcp_out: %w", err)
	}
	return nil
}

// account puts the send counters in the copy ledger: the bytes the kernel
// copied (every byte of the copy path; zero-copy sends the kernel reported
// as copied) are copies.
func (s *tcpOutSink) account() {
	if s.done || s.snd == nil {
		return
	}
	s.done = true
	st := s.snd.Stats()
	if st.Net.CopiedBytes > 0 {
		s.ic.Ledger.Copied("socket send (kernel copy)", st.Net.CopiedBytes)
	}
	if s.ic.Logger != nil {
		s.ic.Logger.Info("tcp_out done", "batches", st.Batches, "rows", st.Rows, "bytes", st.Bytes,
			"zero_copy_sends", st.Net.ZeroCopySends, "completions", st.Net.Completions,
			"copied_completions", st.Net.CopiedCompletions, "kernel_copied_bytes", st.Net.CopiedBytes)
	}
}

func (s *tcpOutSink) Commit() error { return nil }

func (s *tcpOutSink) Abort() {
	if s.snd == nil || s.done {
		return
	}
	cause := errors.New("the sending run failed or was cancelled")
	if s.failed {
		cause = nil // the stream is broken mid-message: no frame can follow
	}
	s.snd.Abort(cause)
	s.account()
}
