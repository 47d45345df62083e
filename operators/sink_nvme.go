package operators

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/zflowdev/zflow/engine"
)

// NVMeSinkConfig configures the nvme sink.
type NVMeSinkConfig struct {
	NVMeConfig
}

// NVMeSinkSpec is the spec of the nvme sink.
func NVMeSinkSpec() engine.Spec {
	return engine.Spec{
		Name:    "nvme",
		Kind:    engine.KindSink,
		Summary: "writes an Arrow IPC stream into an NVMe namespace over NVMe/TCP",
		Doc: "Connects when the first batch (or the end of an empty input) arrives, zeroes the stream header " +
			"block at offset (and flushes), then writes the stream after it in 4 MiB pieces, each spread over " +
			"the queues in commands of the controller's largest transfer. Close writes the rest and flushes; " +
			"Commit writes the header (magic, version, length, CRC-32C of the stream) and flushes again, so a " +
			"run that fails or dies leaves no valid stream in the namespace — nor the one it overwrote. " +
			"Encoding batches into the IPC stream copies them (counted in the copy ledger).",
		Example: `type: nvme
inputs: [trades]
address: 127.0.0.1:4420
subnqn: nqn.2024-01.dev.zflow:data
nsid: 1
offset: 0`,
		MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &NVMeSinkConfig{NVMeConfig: defaultNVMeConfig()} },
		Build:     buildNVMeSink,
	}
}

func init() { engine.Register(NVMeSinkSpec()) }

type nvmeSinkFactory struct {
	cfg    NVMeSinkConfig
	schema *arrow.Schema
}

func buildNVMeSink(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*NVMeSinkConfig)
	errs := cfg.check()
	schema, err := checkSinkInput(bc)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &nvmeSinkFactory{cfg: cfg, schema: schema}, nil
}

func (f *nvmeSinkFactory) Schema() *arrow.Schema { return nil }

func (f *nvmeSinkFactory) Describe() string { return f.cfg.describe() }

func (f *nvmeSinkFactory) New(ic *engine.InstanceContext) (any, error) {
	return &nvmeSink{f: f, ic: ic}, nil
}

// nvmeSink owns its connection from the first Write until Commit, Abort or
// Release.
type nvmeSink struct {
	f      *nvmeSinkFactory
	ic     *engine.InstanceContext
	ns     *nvmeNS
	out    *nvmeWriter
	w      *ipc.Writer
	closed bool
}

// open connects and invalidates the header, so that from here on the
// namespace holds no valid stream until Commit.
func (s *nvmeSink) open(ctx context.Context) error {
	if s.ns != nil {
		return nil
	}
	ns, err := dialNVMe(ctx, "nvme", &s.f.cfg.NVMeConfig)
	if err != nil {
		return err
	}
	s.ns = ns
	if err := ns.c.WriteAt(ns.ns, make([]byte, nvmeHeaderSize), s.f.cfg.Offset); err != nil {
		return fmt.Errorf("nvme: clear the header of %s: %w", ns.where(), err)
	}
	if err := ns.c.Flush(0, ns.ns); err != nil {
		return fmt.Errorf("nvme: flush %s: %w", ns.where(), err)
	}
	s.out = &nvmeWriter{n: ns, buf: make([]byte, 0, nvmeChunk)}
	s.w = ipc.NewWriter(s.out, ipc.WithSchema(s.f.schema), ipc.WithAllocator(s.ic.Alloc))
	if s.ic.Logger != nil {
		s.ic.Logger.Info("nvme sink connected", "target", ns.where(), "queues", ns.c.IOQueues())
	}
	return nil
}

func (s *nvmeSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	rec, err := conformBatch(s.f.schema, in)
	if err != nil {
		return fmt.Errorf("nvme: %w", err)
	}
	defer rec.Release()
	s.ic.Ledger.Copied("nvme ipc write", engine.BatchBytes(rec))
	if err := s.w.Write(rec); err != nil {
		return fmt.Errorf("nvme: %w", err)
	}
	return nil
}

// Close ends the stream, writes what is buffered and flushes: the data is
// durable, the header not yet written.
func (s *nvmeSink) Close(ctx context.Context) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.w.Close(); err != nil {
		return fmt.Errorf("nvme: %w", err)
	}
	if err := s.out.flush(); err != nil {
		return fmt.Errorf("nvme: %w", err)
	}
	if err := s.ns.c.Flush(0, s.ns.ns); err != nil {
		return fmt.Errorf("nvme: flush %s: %w", s.ns.where(), err)
	}
	return nil
}

// Commit publishes the stream: the header, then a flush.
func (s *nvmeSink) Commit() error {
	if s.ns == nil {
		return errors.New("nvme: commit before the stream was written (a bug)")
	}
	h := nvmeHeader{length: uint64(s.out.pos), crc: s.out.crc}
	err := s.ns.c.WriteAt(s.ns.ns, h.marshal(), s.f.cfg.Offset)
	if err == nil {
		err = s.ns.c.Flush(0, s.ns.ns)
	}
	s.disconnect()
	if err != nil {
		return fmt.Errorf("nvme: write the header of %s: %w", s.ns.where(), err)
	}
	if s.ic.Logger != nil {
		s.ic.Logger.Info("nvme sink committed", "target", s.ns.where(), "bytes", h.length)
	}
	return nil
}

// Abort leaves the header zeroed: no valid stream.
func (s *nvmeSink) Abort() {
	s.Release()
	s.disconnect()
}

// Release ends the encoder and the connection if the run ended before
// Close; after Close the connection stays for Commit or Abort.
func (s *nvmeSink) Release() {
	if s.w != nil && !s.closed {
		s.closed = true
		s.w.Close()
		s.disconnect()
	}
}

func (s *nvmeSink) disconnect() {
	if s.ns != nil {
		s.ns.close(s.ic.Logger)
	}
}
