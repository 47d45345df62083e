package operators

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/cxl"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/stream"
)

// A batch descriptor's payload (after cxl's header): the 26-byte trace
// carrier, 2 zero bytes, the length of the IPC metadata (u32), then the
// metadata — a record-batch message whose buffer offsets are relative to
// the segment's data region, which is the body a consumer reads it with.
const (
	shmCarrier = 0
	shmMetaLen = 28
	shmMeta    = 32
)

func checkChannelName(name string) error {
	if err := cxl.ValidChannelName(name); err != nil {
		return engine.Errf("channel", "%v", err)
	}
	return nil
}

func buildShmOut(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*ShmOutConfig)
	var errs []error
	if err := checkPath(cfg.Path); err != nil {
		errs = append(errs, err)
	}
	if err := checkChannelName(cfg.Channel); err != nil {
		errs = append(errs, err)
	}
	if cfg.Consumers < 1 || cfg.Consumers > cxl.MaxConsumers {
		errs = append(errs, engine.Errf("consumers", "want 1 to %d, got %d", cxl.MaxConsumers, cfg.Consumers))
	}
	if cfg.Capacity < 2 || cfg.Capacity > 1<<16 || cfg.Capacity&(cfg.Capacity-1) != 0 {
		errs = append(errs, engine.Errf("capacity", "want a power of two from 2 to 65536, got %d", cfg.Capacity))
	}
	if cfg.Size < 16<<20 {
		errs = append(errs, engine.Errf("size", "want at least 16MiB, got %d bytes", int64(cfg.Size)))
	}
	if cfg.Wait <= 0 {
		errs = append(errs, engine.Errf("wait", "must be positive, got %v", cfg.Wait))
	}
	if cfg.Resume != "replay" && cfg.Resume != "append" {
		errs = append(errs, engine.Errf("resume", "want replay or append, got %q", cfg.Resume))
	}
	schema, err := checkSinkInput(bc)
	if err != nil {
		errs = append(errs, err)
	}
	if schema != nil {
		for _, f := range schema.Fields() {
			if f.Type.ID() == arrow.DICTIONARY {
				errs = append(errs, engine.Errf("inputs", "column %s is dictionary-encoded, which shm_out does not carry yet; cast it to %s", f.Name, f.Type.(*arrow.DictionaryType).ValueType))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &shmOutFactory{cfg: cfg, schema: schema}, nil
}

type shmOutFactory struct {
	cfg    ShmOutConfig
	schema *arrow.Schema
}

func (f *shmOutFactory) Schema() *arrow.Schema { return nil }

func (f *shmOutFactory) Describe() string {
	return fmt.Sprintf("%s channel %s, %d consumer(s), by reference where batches live in the segment (arena cxl on this path), else copied in once", f.cfg.Path, f.cfg.Channel, f.cfg.Consumers)
}

func (f *shmOutFactory) New(ic *engine.InstanceContext) (any, error) {
	return &shmOutSink{f: f, ic: ic}, nil
}

type shmOutSink struct {
	f    *shmOutFactory
	ic   *engine.InstanceContext
	pool *cxl.Pool // descriptors and copies, in the segment
	seg  *cxl.Segment
	part *cxl.Participant
	prod *cxl.Producer
	enc  *stream.BatchEncoder
	data int64 // the data region's offset
	done bool

	// pos is this run's position in its input (rows), the mark each batch
	// carries; skip is what is left to skip of rows a producer this run
	// took over from published (resume: replay).
	pos, skip, skipped int64
	resumed            *cxl.Resume

	batches, byRef, copied int64
}

func (s *shmOutSink) open(ctx context.Context) error {
	if s.prod != nil {
		return nil
	}
	cfg := s.f.cfg
	pool, err := cxl.NewPool(buffers.PoolConfig{Kind: "cxl", Path: cfg.Path, Size: int64(cfg.Size), Logger: s.ic.Logger})
	if err != nil {
		return fmt.Errorf("shm_out: %w", err)
	}
	s.pool, s.seg = pool, pool.Segment()
	s.data = s.seg.Header().DataOff
	if s.part, err = s.seg.Attach(cxl.RoleProducer, "shm_out "+s.ic.Node); err != nil {
		return fmt.Errorf("shm_out: %w", err)
	}
	schema, err := stream.SchemaBytes(s.f.schema)
	if err != nil {
		return fmt.Errorf("shm_out: %w", err)
	}
	s.prod, err = s.seg.Produce(ctx, s.part, cfg.Channel, cxl.ChannelOptions{
		Consumers: cfg.Consumers, Capacity: cfg.Capacity, Wait: cfg.Wait, Schema: schema, Replay: cfg.Resume == "replay",
	})
	if err != nil {
		return fmt.Errorf("shm_out: %w", err)
	}
	s.enc = stream.NewBatchEncoder(s.f.schema, s.pool)
	detail := fmt.Sprintf("segment %s (%s), channel %s", cfg.Path, s.seg.Backing(), cfg.Channel)
	if r := s.prod.Resume(); r != nil {
		s.resumed = r
		mark := int64(r.Mark)
		if cfg.Resume == "replay" {
			s.skip = mark
		} else {
			s.pos = mark
			if r.Ended {
				return fmt.Errorf("shm_out: channel %s: the producer this run took over from had published the end of its stream (%d rows); with resume: append there is nothing to add to it", cfg.Channel, mark)
			}
		}
		detail += fmt.Sprintf(", took over a stream at row %d (resume: %s)", mark, cfg.Resume)
		if s.ic.Logger != nil {
			s.ic.Logger.Warn("shm_out: took over a channel whose producer died before its stream was done",
				"channel", cfg.Channel, "batches", r.Batches, "rows", mark, "ended", r.Ended, "resume", cfg.Resume)
		}
	}
	s.ic.SetIO("shm", detail)
	return nil
}

// skipPublished drops what of in a producer this run took over from
// already published (resume: replay): it returns in itself, a slice of it
// (a reference, to release), or nil when all of it was published.
func (s *shmOutSink) skipPublished(in arrow.RecordBatch) (arrow.RecordBatch, bool) {
	n := in.NumRows()
	s.pos += n
	if s.skip == 0 {
		return in, false
	}
	if n <= s.skip {
		s.skip -= n
		s.skipped += n
		return nil, false
	}
	k := s.skip
	s.skip, s.skipped = 0, s.skipped+k
	return in.NewSlice(k, n), true
}

func (s *shmOutSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	in, sliced := s.skipPublished(in)
	if in == nil {
		return nil
	}
	if sliced {
		defer in.Release()
	}
	if r := s.resumed; r != nil && r.Ended {
		return fmt.Errorf("shm_out: channel %s: its stream ended after %d rows, published by the producer this run took over from, and this run's input has more: it is not the same input read again (resume: replay)", s.f.cfg.Channel, r.Mark)
	}
	e, release, err := s.enc.Encode(in)
	if err != nil {
		return fmt.Errorf("shm_out: %w", err)
	}
	var copies [][]byte
	freeAll := func() {
		release()
		for _, b := range copies {
			s.pool.Free(b)
		}
	}
	hdr := s.seg.Header()
	err = stream.Rebase(e, hdr.DataBytes, func(buf []byte) (int64, error) {
		if off, ok := s.seg.Contains(buf); ok {
			s.byRef += int64(len(buf))
			return off - s.data, nil
		}
		c := s.pool.Allocate(len(buf))
		copy(c, buf)
		copies = append(copies, c)
		s.copied += int64(len(buf))
		off, _ := s.seg.Contains(c)
		return off - s.data, nil
	})
	if err != nil {
		freeAll()
		return fmt.Errorf("shm_out: %w", err)
	}
	desc := s.pool.Allocate(cxl.DescHeaderBytes + shmMeta + len(e.Meta))
	p := desc[cxl.DescHeaderBytes:]
	carrier := engine.InjectBatchTrace(ctx)
	copy(p[shmCarrier:], carrier[:])
	binary.LittleEndian.PutUint32(p[shmMetaLen:], uint32(len(e.Meta)))
	copy(p[shmMeta:], e.Meta)
	// Publish owns the release from here, error or not.
	if _, err := s.prod.Publish(ctx, desc, uint64(s.pos), func() {
		freeAll()
		s.pool.Free(desc)
	}); err != nil {
		return fmt.Errorf("shm_out: %w", err)
	}
	s.batches++
	return nil
}

func (s *shmOutSink) Close(ctx context.Context) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	if s.skip > 0 {
		return fmt.Errorf("shm_out: channel %s: the producer this run took over from published %d rows, and this run's input has only %d: it is not the same input read again (resume: replay); the consumers keep what they got", s.f.cfg.Channel, s.resumed.Mark, s.pos)
	}
	wctx, cancel := context.WithTimeout(ctx, s.f.cfg.Wait)
	defer cancel()
	if err := s.prod.End(wctx); err != nil {
		return fmt.Errorf("shm_out: waiting for the consumers of channel %s: %w", s.f.cfg.Channel, err)
	}
	return s.finish()
}

// finish closes what open made, reports the ledger and says what moved.
func (s *shmOutSink) finish() error {
	if s.done {
		return nil
	}
	s.done = true
	if s.copied > 0 {
		s.ic.Ledger.Copied("into the shared segment (batch not in it)", s.copied)
	}
	if s.ic.Logger != nil {
		s.ic.Logger.Info("shm_out done", "channel", s.f.cfg.Channel, "batches", s.batches, "by_reference_bytes", s.byRef, "copied_bytes", s.copied, "rows_skipped", s.skipped)
	}
	s.enc.Close()
	s.prod.Close()
	s.part.Detach()
	return s.pool.Close()
}

func (s *shmOutSink) Commit() error { return nil }

// Abort tells the consumers the run failed and waits (wait) for them to
// acknowledge what they hold; what they still hold then stays in the
// segment, retired when this process exits, so no consumer reads memory
// reused under it.
func (s *shmOutSink) Abort() {
	if s.prod == nil || s.done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.f.cfg.Wait)
	defer cancel()
	if n := s.prod.Fail(ctx); n > 0 {
		s.done = true
		if s.ic.Logger != nil {
			s.ic.Logger.Warn("shm_out: consumers still hold batches of the failed run; their memory stays in the segment until this process exits", "channel", s.f.cfg.Channel, "batches", n)
		}
		return
	}
	s.finish()
}

func buildShmIn(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*ShmInConfig)
	var errs []error
	if err := checkPath(cfg.Path); err != nil {
		errs = append(errs, err)
	}
	if err := checkChannelName(cfg.Channel); err != nil {
		errs = append(errs, err)
	}
	if cfg.Wait <= 0 {
		errs = append(errs, engine.Errf("wait", "must be positive, got %v", cfg.Wait))
	}
	switch cfg.Validate {
	case "full", "basic", "none":
	default:
		errs = append(errs, engine.Errf("validate", "want full, basic or none, got %q", cfg.Validate))
	}
	if cfg.Ack != "release" && cfg.Ack != "commit" {
		errs = append(errs, engine.Errf("ack", "want release or commit, got %q", cfg.Ack))
	}
	var schema *arrow.Schema
	if len(cfg.Schema) > 0 {
		s, err := columnsSchema("schema", cfg.Schema)
		if err != nil {
			errs = append(errs, err)
		}
		schema = s
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if schema == nil {
		s, err := shmSchema(cfg)
		if err != nil {
			return nil, engine.Errf("channel", "without schema: the channel's schema gives the columns at compile time: %v", err)
		}
		schema = s
	}
	return &shmInFactory{cfg: cfg, schema: schema}, nil
}

// shmSchema waits for the segment and the channel and decodes the
// channel's schema.
func shmSchema(cfg ShmInConfig) (*arrow.Schema, error) {
	seg, unshare, err := cxl.Share(cfg.Path, cxl.Options{Wait: cfg.Wait})
	if err != nil {
		return nil, err
	}
	defer unshare()
	raw, err := seg.ChannelSchema(context.Background(), cfg.Channel, cfg.Wait)
	if err != nil {
		return nil, err
	}
	return decodeSchemaMessage(raw)
}

func decodeSchemaMessage(raw []byte) (*arrow.Schema, error) {
	if _, err := stream.CheckSchemaMessage(raw); err != nil {
		return nil, err
	}
	eos := []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}
	r, err := ipc.NewReader(io.MultiReader(bytes.NewReader(raw), bytes.NewReader(eos)))
	if err != nil {
		return nil, fmt.Errorf("decode the channel's schema: %w", err)
	}
	defer r.Release()
	return stripMeta(r.Schema()), nil
}

type shmInFactory struct {
	cfg    ShmInConfig
	schema *arrow.Schema
}

func (f *shmInFactory) Schema() *arrow.Schema { return f.schema }

func (f *shmInFactory) Describe() string {
	how := "declared columns"
	if len(f.cfg.Schema) == 0 {
		how = "the channel's schema, read at compile time"
	}
	return fmt.Sprintf("%s channel %s (%d columns, %s; arrays point into the segment)", f.cfg.Path, f.cfg.Channel, f.schema.NumFields(), how)
}

func (f *shmInFactory) New(ic *engine.InstanceContext) (any, error) {
	return &shmInSource{f: f, ic: ic}, nil
}

type shmInSource struct {
	f  *shmInFactory
	ic *engine.InstanceContext
	// With ack: commit, the consumer and the hold on the mapping live until
	// RunEnded says whether the output was committed.
	cons *cxl.Consumer
	hold *shmHold
}

// RunEnded, with ack: commit, acknowledges every batch once the run's
// output is committed, and gives the consumer's place up either way (a
// run that failed leaves its batches to the next consumer).
func (s *shmInSource) RunEnded(committed bool) error {
	if s.cons == nil {
		return nil
	}
	var err error
	if committed {
		if err = s.cons.AckAll(); err != nil {
			err = fmt.Errorf("shm_in: acknowledge channel %s: %w (the next consumer run gets these batches again)", s.f.cfg.Channel, err)
		}
	}
	s.cons.Leave()
	s.cons = nil
	s.hold.done()
	return err
}

func (s *shmInSource) Run(ctx context.Context, out engine.Emitter) error {
	cfg := s.f.cfg
	seg, unshare, err := cxl.Share(cfg.Path, cxl.Options{Wait: cfg.Wait})
	if err != nil {
		return fmt.Errorf("shm_in: %w", err)
	}
	part, err := seg.Attach(cxl.RoleConsumer, "shm_in "+s.ic.Node)
	if err != nil {
		unshare()
		return fmt.Errorf("shm_in: %w", err)
	}
	// Batches emitted point into the mapping: it stays, and this process
	// stays a participant, until the last of them is released downstream,
	// which may be after Run returns.
	hold := &shmHold{detach: part.Detach, unshare: unshare}
	defer hold.end()
	commit := cfg.Ack == "commit"
	cons, err := seg.Consume(ctx, part, cfg.Channel, cxl.ChannelOptions{Wait: cfg.Wait, Hold: commit})
	if err != nil {
		return fmt.Errorf("shm_in: %w", err)
	}
	if commit {
		hold.add() // until RunEnded
		s.cons, s.hold = cons, hold
	}
	raw, err := cons.Schema()
	if err != nil {
		return fmt.Errorf("shm_in: %w", err)
	}
	got, err := decodeSchemaMessage(raw)
	if err != nil {
		return fmt.Errorf("shm_in: %w", err)
	}
	if err := checkStreamColumns(s.f.schema, got); err != nil {
		return fmt.Errorf("shm_in: channel %s: %w", cfg.Channel, err)
	}
	s.ic.SetIO("shm", fmt.Sprintf("segment %s (%s), channel %s, consumer %d", cfg.Path, seg.Backing(), cfg.Channel, cons.Index()))
	mr := &shmMessages{ctx: ctx, seg: seg, cons: cons, hold: hold, ack: !commit}
	msgs := &stream.Messages{Schema: raw, Next: mr.next}
	rdr, err := ipc.NewReaderFromMessageReader(msgs, ipc.WithAllocator(s.ic.Alloc))
	if err != nil {
		return fmt.Errorf("shm_in: %w", err)
	}
	defer rdr.Release()
	traced, _ := out.(engine.TracedEmitter)
	for {
		if !rdr.Next() {
			if err := rdr.Err(); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("shm_in: %w", err)
			}
			if msgs.Err != nil {
				return fmt.Errorf("shm_in: %w", msgs.Err)
			}
			if !commit {
				cons.Leave()
			}
			return nil
		}
		rec := rdr.RecordBatch()
		var verr error
		switch cfg.Validate {
		case "full":
			verr = array.ValidateRecordFull(rec)
		case "basic":
			verr = array.ValidateRecord(rec)
		}
		if verr != nil {
			return fmt.Errorf("shm_in: channel %s: batch %d is malformed: %w", cfg.Channel, mr.seq, verr)
		}
		b, err := conformBatch(s.f.schema, rec)
		if err != nil {
			return fmt.Errorf("shm_in: batch %d: %w", mr.seq, err)
		}
		// Read from the buffers' addresses, not assumed: what lies in this
		// process's mapping of the segment came by reference; anything
		// else arrow-go made while decoding.
		var inSeg, outside int64
		for _, c := range b.Columns() {
			segmentBytes(seg, c.Data(), &inSeg, &outside)
		}
		s.ic.Ledger.Referenced("shared segment", inSeg)
		if outside > 0 {
			s.ic.Ledger.Copied("decoded outside the segment", outside)
		}
		if traced != nil {
			err = traced.EmitTraced(b, engine.TraceCarrier(mr.carrier))
		} else {
			err = out.Emit(b)
		}
		if err != nil {
			if errors.Is(err, engine.ErrStop) {
				return nil
			}
			return err
		}
	}
}

// segmentBytes adds the bytes of d's buffers (children included) that lie
// in seg's data region to in, and the others to out.
func segmentBytes(seg *cxl.Segment, d arrow.ArrayData, in, out *int64) {
	for _, b := range d.Buffers() {
		if b == nil || b.Len() == 0 {
			continue
		}
		if _, ok := seg.Contains(b.Bytes()); ok {
			*in += int64(b.Len())
		} else {
			*out += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		segmentBytes(seg, c, in, out)
	}
}

// shmMessages hands stream.Messages one record-batch message per
// descriptor of a channel, whose body is the segment's data region in
// this process's mapping. The body's release (when the last array of the
// batch is released) acknowledges the batch.
type shmMessages struct {
	ctx     context.Context
	seg     *cxl.Segment
	cons    *cxl.Consumer
	seq     uint64
	carrier [stream.CarrierSize]byte
	hold    *shmHold
	ack     bool // acknowledge each batch when released (ack: release)
}

func (m *shmMessages) next() (*ipc.Message, error) {
	d, err := m.cons.Next(m.ctx)
	if err != nil {
		return nil, err
	}
	p := d.Payload
	if len(p) < shmMeta {
		return nil, fmt.Errorf("channel batch %d: a descriptor payload of %d bytes", d.Seq, len(p))
	}
	n := int(binary.LittleEndian.Uint32(p[shmMetaLen:]))
	if n > len(p)-shmMeta {
		return nil, fmt.Errorf("channel batch %d: metadata of %d bytes in a payload of %d", d.Seq, n, len(p))
	}
	m.seq = d.Seq
	copy(m.carrier[:], p[shmCarrier:shmCarrier+stream.CarrierSize])
	meta := bytes.Clone(p[shmMeta : shmMeta+n])
	hdr := m.seg.Header()
	region := m.seg.Bytes()[hdr.DataOff : hdr.DataOff+hdr.DataBytes]
	m.hold.add()
	body := memory.NewBufferWithAllocator(region, &ackOnFree{cons: m.cons, seq: d.Seq, hold: m.hold, ack: m.ack})
	msg, err := stream.CheckBatchMeta(meta, body)
	if err != nil {
		body.Release()
		return nil, fmt.Errorf("channel batch %d: %w", d.Seq, err)
	}
	body.Release() // the message holds it now
	return msg, nil
}

// ackOnFree is the "allocator" of one batch's body: arrow-go frees the
// body when the last array slicing it is released, which acknowledges
// the batch to the producer.
type ackOnFree struct {
	once sync.Once
	cons *cxl.Consumer
	seq  uint64
	hold *shmHold
	ack  bool // false with ack: commit (RunEnded acknowledges)
}

func (a *ackOnFree) Allocate(int) []byte           { panic("shm_in: a batch body does not allocate") }
func (a *ackOnFree) Reallocate(int, []byte) []byte { panic("shm_in: a batch body does not allocate") }
func (a *ackOnFree) Free([]byte) {
	a.once.Do(func() {
		if a.ack {
			a.cons.Release(a.seq)
		}
		a.hold.done()
	})
}

// shmHold keeps a consumer's mapping and participant slot while batches
// it emitted are alive: the last of end and the last batch's release
// detaches and unmaps.
type shmHold struct {
	mu      sync.Mutex
	live    int
	ended   bool
	detach  func()
	unshare func() error
}

func (h *shmHold) add() {
	h.mu.Lock()
	h.live++
	h.mu.Unlock()
}

func (h *shmHold) done() {
	h.mu.Lock()
	h.live--
	last := h.ended && h.live == 0
	h.mu.Unlock()
	if last {
		h.close()
	}
}

func (h *shmHold) end() {
	h.mu.Lock()
	h.ended = true
	last := h.live == 0
	h.mu.Unlock()
	if last {
		h.close()
	}
}

func (h *shmHold) close() {
	h.detach()
	h.unshare()
}
