package operators

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
)

// NVMeSourceConfig configures the nvme source.
type NVMeSourceConfig struct {
	NVMeConfig
}

// NVMeSourceSpec is the spec of the nvme source.
func NVMeSourceSpec() engine.Spec {
	return engine.Spec{
		Name:    "nvme",
		Kind:    engine.KindSource,
		Summary: "reads an Arrow IPC stream an nvme sink wrote into an NVMe namespace over NVMe/TCP",
		Doc: "Reads the stream header at offset (magic, version, length, CRC-32C): a namespace without one is an " +
			"error that says so. Compiling connects to read the stream's schema; the run reads the stream in 4 MiB " +
			"pieces spread over the queues and checks its CRC-32C at the end (a mismatch fails the run). The IPC " +
			"decoder copies each piece out of the read buffer (counted in the copy ledger).",
		Example: `type: nvme
address: 127.0.0.1:4420
subnqn: nqn.2024-01.dev.zflow:data
nsid: 1
offset: 0`,
		NewConfig: func() any { return &NVMeSourceConfig{NVMeConfig: defaultNVMeConfig()} },
		Build:     buildNVMeSource,
	}
}

func init() { engine.Register(NVMeSourceSpec()) }

type nvmeSourceFactory struct {
	cfg    NVMeSourceConfig
	schema *arrow.Schema
}

func buildNVMeSource(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*NVMeSourceConfig)
	if errs := cfg.check(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	f := &nvmeSourceFactory{cfg: cfg}
	// The schema is the stream's first message.
	err := f.open(context.Background(), memory.DefaultAllocator, nil, func(r *ipc.Reader) error {
		f.schema = stripMeta(r.Schema())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// open connects, checks the header and hands fn a reader of the stream.
func (f *nvmeSourceFactory) open(ctx context.Context, alloc memory.Allocator, log *slog.Logger, fn func(r *ipc.Reader) error) error {
	ns, err := dialNVMe(ctx, "nvme", &f.cfg.NVMeConfig)
	if err != nil {
		return err
	}
	defer ns.close(log)
	h, err := ns.readHeader()
	if err != nil {
		return fmt.Errorf("nvme: %w", err)
	}
	src := &nvmeReader{n: ns, h: h}
	r, err := ipc.NewReader(src, ipc.WithAllocator(alloc))
	if err != nil {
		return fmt.Errorf("nvme: the stream in %s: %w", ns.where(), err)
	}
	defer r.Release()
	return fn(r)
}

func (f *nvmeSourceFactory) Schema() *arrow.Schema { return f.schema }

func (f *nvmeSourceFactory) Describe() string { return f.cfg.describe() }

func (f *nvmeSourceFactory) New(ic *engine.InstanceContext) (any, error) {
	return &nvmeSource{f: f, ic: ic}, nil
}

type nvmeSource struct {
	f  *nvmeSourceFactory
	ic *engine.InstanceContext
}

func (s *nvmeSource) Run(ctx context.Context, out engine.Emitter) error {
	return s.f.open(ctx, s.ic.Alloc, s.ic.Logger, func(r *ipc.Reader) error {
		if err := checkStreamColumns(s.f.schema, r.Schema()); err != nil {
			return fmt.Errorf("nvme: the stream changed since compiling: %w", err)
		}
		for r.Next() {
			rec := r.RecordBatch()
			s.ic.Ledger.Copied("nvme ipc read", engine.BatchBytes(rec))
			b, err := conformBatch(s.f.schema, rec)
			if err != nil {
				return fmt.Errorf("nvme: %w", err)
			}
			if err := out.Emit(b); err != nil {
				if errors.Is(err, engine.ErrStop) {
					return nil
				}
				return err
			}
		}
		if err := r.Err(); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("nvme: %w", err)
		}
		return nil
	})
}
