package cxl

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"
)

// A channel carries batch descriptors from one producer to a declared
// number of consumers, each of which gets every descriptor, in order.
// Its entry in the channel table (ChannelBytes, little-endian):
//
//	off size field
//	  0    4 state: 0 free, 1 open (stored last when made)
//	  4    4 consumers (1..MaxConsumers)
//	  8    4 ring capacity
//	 12    4 flags: chanEnded (the producer published the end of stream),
//	         chanFailed (it failed), chanDone (every consumer acked the end),
//	         chanClosed (its producer finished, after chanDone)
//	 16    4 producer's participant slot + 1
//	 20    4 first extent of the channel's rings
//	 24    4 extents holding the rings
//	 28    4 zero
//	 32    8 published: descriptors published (the next one's sequence)
//	 40   40 name, NUL-padded
//	 80      consumer k at 80 + 32k: participant slot + 1 (u32), takeovers
//	         (u32), ring offset (u64), zero (16 bytes)
//	336    8 schema offset (in the channel's extents, after the rings)
//	344    4 schema bytes
//	348    4 CRC-32C of the schema bytes
//	352    8 stream: the sequence of the current stream's first batch
//
// The schema is the producer's, opaque here (the shm operators put an
// Arrow IPC schema message in it); a producer that takes over a channel
// must bring the same bytes.
//
// Each consumer has a Ring in the channel's extents. The producer pushes
// (descriptor offset, length, mark) to every consumer's ring; a consumer acks
// what it is done with, and the producer releases a batch once every
// consumer acked it. Entries stay in a ring until acked, so a consumer
// that takes over a dead one's place rewinds and gets what the dead one
// had not acked: delivery is at least once, in sequence order, and a
// consumer drops sequence numbers it has already delivered.
//
// A stream is what one producer run publishes, up to its end marker (an
// entry with offset and length 0). A producer that takes over a channel
// whose stream is not done (its producer died or failed before every
// consumer acked the end; with ChannelOptions.Replay, also one whose
// producer died after that but before it finished) continues that stream: it first completes the
// last batch on the rings that lack it (the dead one may have died
// between two pushes), then learns from that entry's mark — the
// producer's position in its input, opaque here (the shm operators count
// rows) — how far its predecessor got: Producer.Resume. A producer
// taking over a done channel starts a new stream.
//
// A descriptor lives in the segment's data region, 8-byte aligned:
// magic "ZFDS" (u32), total bytes (u32), sequence (u64), CRC-32C of the
// payload (u32), zero (u32), then the payload (what the batch is: its
// buffers' offsets and lengths, schema, trace context; the channel does
// not read it). A consumer copies a descriptor out of shared memory once
// and checks the copy.
const (
	MaxConsumers    = 8
	DescHeaderBytes = 24
	MaxDescBytes    = 1 << 20
	descMagic       = 0x5344465a // "ZFDS"

	chState     = 0
	chConsumers = 4
	chCap       = 8
	chFlags     = 12
	chProducer  = 16
	chExtent    = 20
	chExtents   = 24
	chPublished = 32
	chName      = 40
	chNameBytes = 40
	chConsumer0 = 80
	chConsBytes = 32
	chSchemaOff = 336
	chSchemaLen = 344
	chSchemaCRC = 348
	chStream    = 352
	maxSchema   = 1 << 20

	chanEnded  = 1
	chanFailed = 2 // the producer failed: consumers stop with an error
	chanDone   = 4 // every consumer acked the end of the stream
	chanClosed = 8 // the producer finished (after chanDone)

	// channelOwner marks the extents of channel i's rings in the extent
	// table; retiredOwner those of a dead producer whose batches a
	// consumer may still read.
	channelOwner = 0x80000000
	retiredOwner = 0xFFFFFFFF

	lockChannels = lockMake - 1
)

// ChannelOptions say how to make or join a channel.
type ChannelOptions struct {
	// Consumers is how many consumers the producer waits for (each gets
	// every batch); 1 by default. Producer only.
	Consumers int
	// Capacity is each consumer's ring: how many batches may be published
	// and not yet acked by it (backpressure); 64 by default. Producer only.
	Capacity int
	// Wait is how long a consumer waits for the channel to be made, and
	// how long either side waits for a peer that died to be replaced.
	Wait time.Duration
	// Ring tunes waiting (spin, check interval).
	Ring RingOptions
	// Schema is what every batch of the channel is (opaque bytes, at most
	// 1 MiB). Producer only: consumers read it with Consumer.Schema.
	Schema []byte
	// Replay says the producer reads its input again from its start: when
	// it takes over from a producer that died after its stream was
	// delivered but before it finished, it continues that stream (and has
	// nothing to add) rather than start a new one. Producer only.
	Replay bool
	// Hold says the consumer acks only with AckAll, once its output is
	// final: its batches stay in the segment until then, and Next fails,
	// instead of waiting for ever, when the consumer holds a full ring.
	// Consumer only.
	Hold bool
}

func (s *Segment) chanOff(i int) int64 {
	return s.hdr.Channels.Off + int64(i)*int64(s.hdr.Channels.Bytes)
}

func (s *Segment) chanName(i int) string {
	off := s.chanOff(i) + chName
	b := s.mem[off : off+chNameBytes]
	if k := bytes.IndexByte(b, 0); k >= 0 {
		b = b[:k]
	}
	return string(b)
}

// lockChannelTable serialises making and joining channels, waiting up to
// d; the returned func unlocks.
func (s *Segment) lockChannelTable(ctx context.Context) (func(), error) {
	for {
		got, err := tryLock(s.fd, lockChannels)
		if err != nil {
			return nil, fmt.Errorf("cxl: segment %s: lock the channel table: %w", s.name, err)
		}
		if got {
			return func() { unlock(s.fd, lockChannels) }, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cxl: segment %s: lock the channel table: %w", s.name, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// findChannel returns the index of the open channel called name, or -1.
func (s *Segment) findChannel(name string) int {
	for i := 0; i < s.hdr.Channels.Count; i++ {
		if s.u32(s.chanOff(i)+chState).Load() == 1 && s.chanName(i) == name {
			return i
		}
	}
	return -1
}

// slotAlive says whether participant slot i (not +1) is held by a live
// process.
func (s *Segment) slotAlive(i int) bool {
	if i < 0 || i >= s.hdr.Slots.Count {
		return false
	}
	s.mu.Lock()
	held := s.held[i]
	s.mu.Unlock()
	if held {
		return true
	}
	other, err := lockedByOther(s.fd, lockSlot0+int64(i))
	return err != nil || other // an error: assume alive, never reclaim on doubt
}

// Producer publishes into one channel.
type Producer struct {
	seg       *Segment
	part      *Participant
	idx       int
	off       int64
	rings     []*Ring
	pending   []pendingBatch // published, not yet acked by every consumer
	next      uint64
	mark      uint64 // the last entry's mark
	ended     bool   // the stream's end is published
	resume    *Resume
	consAlive []func() error
}

// Resume says what a producer that took over an unfinished stream
// continues: its predecessor's last published entry.
type Resume struct {
	Batches uint64 // batches (the end marker included) the stream had
	Mark    uint64 // the last entry's mark: its producer's position
	Ended   bool   // the end of the stream was published
}

type pendingBatch struct {
	seq     uint64
	release func()
}

// ValidChannelName says why name cannot name a channel (nil if it can).
func ValidChannelName(name string) error {
	if name == "" || len(name) > chNameBytes || bytes.IndexByte([]byte(name), 0) >= 0 {
		return fmt.Errorf("cxl: channel name %q: want 1 to %d bytes, no NUL", name, chNameBytes)
	}
	return nil
}

// Produce makes the channel name (or takes over one whose producer died,
// continuing its sequence and, when that one's stream is not done, the
// stream: see Resume) with part as its producer.
func (s *Segment) Produce(ctx context.Context, part *Participant, name string, opts ChannelOptions) (*Producer, error) {
	p, err := s.produce(ctx, part, name, opts)
	if err != nil || p.resume == nil {
		return p, err
	}
	// Outside the table lock: a lagging ring may be full, and its consumer
	// needs the lock to join and drain it.
	if err := p.complete(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (s *Segment) produce(ctx context.Context, part *Participant, name string, opts ChannelOptions) (*Producer, error) {
	if err := ValidChannelName(name); err != nil {
		return nil, err
	}
	if opts.Consumers == 0 {
		opts.Consumers = 1
	}
	if opts.Capacity == 0 {
		opts.Capacity = 64
	}
	if opts.Consumers < 1 || opts.Consumers > MaxConsumers {
		return nil, fmt.Errorf("cxl: channel %s: %d consumers: want 1 to %d", name, opts.Consumers, MaxConsumers)
	}
	if len(opts.Schema) > maxSchema {
		return nil, fmt.Errorf("cxl: channel %s: a schema of %d bytes, more than %d", name, len(opts.Schema), maxSchema)
	}
	unlockTable, err := s.lockChannelTable(ctx)
	if err != nil {
		return nil, err
	}
	defer unlockTable()
	i := s.findChannel(name)
	if i >= 0 {
		off := s.chanOff(i)
		if prod := int(s.u32(off+chProducer).Load()) - 1; s.slotAlive(prod) {
			info := s.slotInfo(prod)
			return nil, fmt.Errorf("cxl: segment %s: channel %s already has a live producer (pid %d)", s.name, name, info.PID)
		}
		if n := int(s.u32(off + chConsumers).Load()); n != opts.Consumers {
			return nil, fmt.Errorf("cxl: segment %s: channel %s was made for %d consumers, not %d", s.name, name, n, opts.Consumers)
		}
		if old, err := s.channelSchema(i); err != nil {
			return nil, err
		} else if !bytes.Equal(old, opts.Schema) {
			return nil, fmt.Errorf("cxl: segment %s: channel %s carries batches of another schema than this producer's", s.name, name)
		}
		s.u32(off + chProducer).Store(uint32(part.slot + 1))
		p, err := s.openProducer(part, i, opts)
		if err != nil {
			return nil, err
		}
		flags := s.u32(off + chFlags).Load()
		if delivered := flags&chanDone != 0 || p.endAcked(); delivered && (flags&chanClosed != 0 || !opts.Replay) {
			// A new stream on the channel.
			s.u64(off + chStream).Store(p.next)
			s.u32(off + chFlags).Store(0)
			return p, nil
		}
		p.resume = &Resume{Batches: p.next - s.u64(off+chStream).Load()}
		s.u32(off + chFlags).And(^uint32(chanFailed))
		return p, nil
	} else if i, err = s.makeChannel(part, name, opts); err != nil {
		return nil, err
	}
	return s.openProducer(part, i, opts)
}

// endAcked says whether the stream's last entry is its end marker, on
// every ring and acked by every consumer: the stream is done even if its
// producer died before saying so.
func (p *Producer) endAcked() bool {
	if p.next == p.seg.u64(p.off+chStream).Load() || p.lowAcked() < p.next {
		return false
	}
	for _, r := range p.rings {
		if r.mine != p.next {
			return false
		}
	}
	e, err := p.rings[0].read(p.next - 1)
	return err == nil && e.A == 0 && e.B == 0
}

// complete pushes the last entry of the stream a dead producer left to
// the rings that lack it, and reads its mark.
func (p *Producer) complete(ctx context.Context) error {
	if p.resume.Batches == 0 {
		return nil
	}
	last := p.next - 1
	var have *Ring
	for _, r := range p.rings {
		if r.mine == p.next {
			have = r
			break
		}
	}
	e, err := have.read(last)
	if err != nil {
		return err
	}
	for k, r := range p.rings {
		if r.mine == p.next {
			continue
		}
		if _, err := r.PushEntry(ctx, e, p.consAlive[k]); err != nil {
			return fmt.Errorf("cxl: segment %s: channel %s: complete batch %d for consumer %d: %w", p.seg.name, p.seg.chanName(p.idx), last, k, err)
		}
	}
	p.seg.u64(p.off + chPublished).Store(p.next)
	p.mark = e.C
	p.ended = e.A == 0 && e.B == 0
	p.resume.Mark, p.resume.Ended = e.C, p.ended
	return nil
}

// Resume says what stream this producer continues: nil when it made the
// channel or started a new stream on it, else its predecessor's last
// entry (the predecessor died, or failed, before every consumer acked the
// end of its stream).
func (p *Producer) Resume() *Resume { return p.resume }

// makeChannel lays out a new channel: an entry, and its consumers' rings
// in extents of its own.
func (s *Segment) makeChannel(part *Participant, name string, opts ChannelOptions) (int, error) {
	i := -1
	for k := 0; k < s.hdr.Channels.Count; k++ {
		if s.u32(s.chanOff(k)+chState).Load() == 0 {
			i = k
			break
		}
	}
	if i < 0 {
		return 0, fmt.Errorf("cxl: segment %s: make channel %s: all %d channels in use", s.name, name, s.hdr.Channels.Count)
	}
	s.freeUnmadeChannel(i)
	ringBytes := RingBytes(opts.Capacity)
	schemaAt := int64(opts.Consumers) * ringBytes
	need := int((schemaAt + int64(len(opts.Schema)) + s.hdr.ExtentSize - 1) / s.hdr.ExtentSize)
	first, err := s.claimExtents(channelOwner|uint32(i), need, 0)
	if err != nil {
		return 0, fmt.Errorf("cxl: make channel %s: %w", name, err)
	}
	off := s.chanOff(i)
	clear(s.mem[off : off+int64(s.hdr.Channels.Bytes)])
	le := binary.LittleEndian
	b := s.mem[off:]
	le.PutUint32(b[chConsumers:], uint32(opts.Consumers))
	le.PutUint32(b[chCap:], uint32(opts.Capacity))
	le.PutUint32(b[chProducer:], uint32(part.slot+1))
	le.PutUint32(b[chExtent:], uint32(first))
	le.PutUint32(b[chExtents:], uint32(need))
	copy(b[chName:chName+chNameBytes], name)
	base := s.hdr.DataOff + int64(first)*s.hdr.ExtentSize
	for k := 0; k < opts.Consumers; k++ {
		ro := base + int64(k)*ringBytes
		if err := s.InitRing(ro, opts.Capacity); err != nil {
			return 0, err
		}
		le.PutUint64(b[chConsumer0+k*chConsBytes+8:], uint64(ro))
	}
	copy(s.mem[base+schemaAt:], opts.Schema)
	le.PutUint64(b[chSchemaOff:], uint64(base+schemaAt))
	le.PutUint32(b[chSchemaLen:], uint32(len(opts.Schema)))
	le.PutUint32(b[chSchemaCRC:], crc32.Checksum(opts.Schema, castagnoli))
	le.PutUint64(b[chStream:], 0)
	s.u32(off + chState).Store(1)
	return i, nil
}

// freeUnmadeChannel frees the extents a maker of channel entry i claimed
// before it died (the entry is not open): only with the channel table
// locked, so that no maker is at work.
func (s *Segment) freeUnmadeChannel(i int) int {
	if s.u32(s.chanOff(i)+chState).Load() != 0 {
		return 0
	}
	n := 0
	for x := 0; x < s.hdr.Extents.Count; x++ {
		e := s.extentEntry(x)
		if s.u32(e+extOwner).Load() == channelOwner|uint32(i) {
			s.u32(e + extRun).Store(0)
			s.u32(e + extOwner).Store(0)
			n++
		}
	}
	return n
}

// channelSchema copies channel ch's schema out and checks it: inside the
// channel's extents, its checksum right.
func (s *Segment) channelSchema(ch int) ([]byte, error) {
	off := s.chanOff(ch)
	le := binary.LittleEndian
	at := int64(le.Uint64(s.mem[off+chSchemaOff:]))
	n := int64(le.Uint32(s.mem[off+chSchemaLen:]))
	first, ext := int64(s.u32(off+chExtent).Load()), int64(s.u32(off+chExtents).Load())
	lo := s.hdr.DataOff + first*s.hdr.ExtentSize
	hi := lo + ext*s.hdr.ExtentSize
	if first+ext > int64(s.hdr.Extents.Count) || n > maxSchema || at < lo || at > hi-n {
		return nil, fmt.Errorf("cxl: segment %s: channel %s: schema of %d bytes at offset %d outside the channel's extents: %w", s.name, s.chanName(ch), n, at, ErrCorrupt)
	}
	b := append([]byte(nil), s.mem[at:at+n]...)
	if got, want := crc32.Checksum(b, castagnoli), le.Uint32(s.mem[off+chSchemaCRC:]); got != want {
		return nil, fmt.Errorf("cxl: segment %s: channel %s: schema at offset %d sums to %#08x, the channel says %#08x: %w", s.name, s.chanName(ch), at, got, want, ErrCorrupt)
	}
	return b, nil
}

func (s *Segment) consumerOff(ch, k int) int64 {
	return s.chanOff(ch) + chConsumer0 + int64(k)*chConsBytes
}

// ringOf opens consumer k's ring of channel ch, checking its offset lies
// in the channel's extents.
func (s *Segment) ringOf(ch, k int, producer bool, opts RingOptions) (*Ring, error) {
	off := s.chanOff(ch)
	first, n := int64(s.u32(off+chExtent).Load()), int64(s.u32(off+chExtents).Load())
	ro := int64(s.u64(s.consumerOff(ch, k) + 8).Load())
	lo := s.hdr.DataOff + first*s.hdr.ExtentSize
	if first+n > int64(s.hdr.Extents.Count) || ro < lo || ro >= lo+n*s.hdr.ExtentSize {
		return nil, fmt.Errorf("cxl: segment %s: channel %s: consumer %d's ring at offset %d is outside the channel's extents: %w", s.name, s.chanName(ch), k, ro, ErrCorrupt)
	}
	return s.OpenRing(ro, producer, opts)
}

func (s *Segment) openProducer(part *Participant, i int, opts ChannelOptions) (*Producer, error) {
	off := s.chanOff(i)
	n := int(s.u32(off + chConsumers).Load())
	if n < 1 || n > MaxConsumers {
		return nil, fmt.Errorf("cxl: segment %s: channel %s at offset %d: %d consumers: %w", s.name, s.chanName(i), off+chConsumers, n, ErrCorrupt)
	}
	p := &Producer{seg: s, part: part, idx: i, off: off}
	for k := 0; k < n; k++ {
		r, err := s.ringOf(i, k, true, opts.Ring)
		if err != nil {
			return nil, err
		}
		p.rings = append(p.rings, r)
		p.consAlive = append(p.consAlive, p.consumerGone(k, opts.Wait))
		p.next = max(p.next, r.mine)
	}
	// The rings say what was published: a producer that died between its
	// pushes and storing the count left some a batch ahead of it, and at
	// most that one batch ahead of the others.
	for k, r := range p.rings {
		if r.mine+1 < p.next {
			return nil, fmt.Errorf("cxl: segment %s: channel %s: consumer %d's ring has %d entries, another's %d: %w", s.name, s.chanName(i), k, r.mine, p.next, ErrCorrupt)
		}
	}
	if pub := s.u64(off + chPublished).Load(); pub > p.next || pub+1 < p.next {
		return nil, fmt.Errorf("cxl: segment %s: channel %s: %d batches published, the rings hold %d: %w", s.name, s.chanName(i), pub, p.next, ErrCorrupt)
	}
	if st := s.u64(off + chStream).Load(); st > p.next {
		return nil, fmt.Errorf("cxl: segment %s: channel %s: stream starts at batch %d of %d: %w", s.name, s.chanName(i), st, p.next, ErrCorrupt)
	}
	return p, nil
}

// consumerGone is the producer's alive check on consumer k while its ring
// is full: it fails once the place has had no live consumer for wait (a
// consumer not attached yet, or dead and not replaced). With wait 0 the
// producer waits as long as its context allows.
func (p *Producer) consumerGone(k int, wait time.Duration) func() error {
	var w absence
	return func() error {
		slot := int(p.seg.u32(p.seg.consumerOff(p.idx, k)).Load()) - 1
		return w.check(wait <= 0 || slot >= 0 && p.seg.slotAlive(slot), wait, func() error {
			return fmt.Errorf("channel %s: consumer %d has not been attached and alive for %v", p.seg.chanName(p.idx), k, wait)
		})
	}
}

// absence times how long a peer has been missing, for the alive check of
// a ring wait: it fails (with gone's error) once the peer has been absent
// for wait in a row, which gives a dead peer's successor time to come.
type absence struct{ since time.Time }

func (a *absence) check(present bool, wait time.Duration, gone func() error) error {
	if present {
		a.since = time.Time{}
		return nil
	}
	if a.since.IsZero() {
		a.since = time.Now()
	}
	if time.Since(a.since) >= wait {
		return gone()
	}
	return nil
}

// Next is the sequence number the next Publish gets.
func (p *Producer) Next() uint64 { return p.next }

// Publish hands desc — DescHeaderBytes of header room followed by the
// payload, in the segment's data region, 8-byte aligned — to every
// consumer as batch Next(), with mark: the producer's position in its
// input after this batch (what a successor learns from Resume). It fills in the header, waits while a
// consumer's ring is full (backpressure) until ctx ends, and runs release
// once every consumer acked the batch. Publish owns release whatever
// happens: on an error before any consumer got the batch it runs it at
// once; after some did, the stream is broken (the consumers are told the
// producer failed) and release waits for their acks like any other.
func (p *Producer) Publish(ctx context.Context, desc []byte, mark uint64, release func()) (uint64, error) {
	s := p.seg
	if p.ended {
		if release != nil {
			release()
		}
		return 0, fmt.Errorf("cxl: segment %s: channel %s: the stream already ended (its end was published by the producer this one took over from)", s.name, s.chanName(p.idx))
	}
	off, ok := s.Contains(desc)
	if !ok || off%8 != 0 || len(desc) < DescHeaderBytes || len(desc) > MaxDescBytes {
		if release != nil {
			release()
		}
		return 0, fmt.Errorf("cxl: segment %s: channel %s: a descriptor of %d bytes must lie 8-byte aligned in the segment's data region, %d to %d bytes", s.name, s.chanName(p.idx), len(desc), DescHeaderBytes, MaxDescBytes)
	}
	seq := p.next
	sealDesc(desc, seq)
	for k, r := range p.rings {
		if _, err := r.PushEntry(ctx, Entry{A: uint64(off), B: uint64(len(desc)), C: mark}, p.consAlive[k]); err != nil {
			if k == 0 {
				if release != nil {
					release()
				}
				return 0, err
			}
			// Consumers 0..k-1 have the batch, k and after do not: their
			// rings no longer agree, so the stream cannot go on.
			p.pending = append(p.pending, pendingBatch{seq: seq, release: release})
			s.u32(p.off + chFlags).Or(chanFailed)
			return 0, fmt.Errorf("cxl: segment %s: channel %s: batch %d reached %d of %d consumers: %w", s.name, s.chanName(p.idx), seq, k, len(p.rings), err)
		}
	}
	p.next, p.mark = seq+1, mark
	s.u64(p.off + chPublished).Store(p.next)
	p.pending = append(p.pending, pendingBatch{seq: seq, release: release})
	p.Reap()
	return seq, nil
}

// sealDesc fills in desc's header for batch seq.
func sealDesc(desc []byte, seq uint64) {
	le := binary.LittleEndian
	le.PutUint32(desc[0:], descMagic)
	le.PutUint32(desc[4:], uint32(len(desc)))
	le.PutUint64(desc[8:], seq)
	le.PutUint32(desc[16:], crc32.Checksum(desc[DescHeaderBytes:], castagnoli))
	le.PutUint32(desc[20:], 0)
}

// Reap releases the batches every consumer acked, oldest first.
func (p *Producer) Reap() {
	low := p.lowAcked()
	n := 0
	for n < len(p.pending) && p.pending[n].seq < low {
		if r := p.pending[n].release; r != nil {
			r()
		}
		n++
	}
	if n > 0 {
		m := copy(p.pending, p.pending[n:])
		clear(p.pending[m:])
		p.pending = p.pending[:m]
	}
}

// Pending is the number of batches published and not yet acked by every
// consumer.
func (p *Producer) Pending() int { return len(p.pending) }

// End publishes the end of the stream (unless the producer this one took
// over from did) and waits, until ctx ends, for every consumer to ack
// everything, the end included; the releases run as acks arrive. The
// channel is then done: the next producer starts a new stream.
func (p *Producer) End(ctx context.Context) error {
	s := p.seg
	if !p.ended {
		s.u32(p.off + chFlags).Or(chanEnded)
		for k, r := range p.rings {
			if _, err := r.PushEntry(ctx, Entry{C: p.mark}, p.consAlive[k]); err != nil {
				return err
			}
		}
		// The end marker takes a sequence number like a batch (a sequence
		// is a ring position), and consumers ack it: a producer that later
		// takes the channel over continues after it.
		p.next++
		p.ended = true
		s.u64(p.off + chPublished).Store(p.next)
	}
	for {
		p.Reap()
		if len(p.pending) == 0 && p.lowAcked() >= p.next {
			s.u32(p.off + chFlags).Or(chanDone)
			s.sweep()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cxl: segment %s: channel %s: %d batches not acked by every consumer: %w", s.name, s.chanName(p.idx), p.next-p.lowAcked(), ctx.Err())
		case <-time.After(200 * time.Microsecond):
		}
	}
}

// Close says the producer finished after its stream was done (End
// returned): a producer that takes the channel over starts a new stream
// even with Replay. The last thing a producer does before it detaches.
func (p *Producer) Close() {
	if p.seg.u32(p.off+chFlags).Load()&chanDone != 0 {
		p.seg.u32(p.off + chFlags).Or(chanClosed)
	}
}

// lowAcked is the least of the consumers' acked counts.
func (p *Producer) lowAcked() uint64 {
	low := p.next
	for _, r := range p.rings {
		low = min(low, r.Acked())
	}
	return low
}

// Fail tells the consumers the producer failed (they stop with an error
// instead of waiting for more) and waits, until ctx ends, for them to ack
// what they hold; it returns how many batches are still not acked. Their
// memory must then stay as it is (the caller leaves its extents to be
// retired when this process exits) unless Abandon is called.
func (p *Producer) Fail(ctx context.Context) int {
	p.seg.u32(p.off + chFlags).Or(chanFailed)
	for k := range p.rings {
		futexWake(p.rings[k].word32(ringDataEv))
	}
	for {
		p.Reap()
		if len(p.pending) == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return len(p.pending)
		case <-time.After(time.Millisecond):
		}
	}
}

// Abandon runs the releases of batches still pending without waiting
// for acks: only when the consumers can no longer read them (the segment
// is going away).
func (p *Producer) Abandon() {
	for _, b := range p.pending {
		if b.release != nil {
			b.release()
		}
	}
	p.pending = nil
}

// Consumer reads one channel.
type Consumer struct {
	mu    sync.Mutex // Release may come from any goroutine
	seg   *Segment
	part  *Participant
	idx   int
	k     int
	ring  *Ring
	wait  time.Duration
	next  uint64          // the next sequence to deliver
	done  map[uint64]bool // released out of order, above the ring's acked count
	ended bool
	hold  bool
	desc  []byte
}

// Delivery is one batch's descriptor, copied out of the segment.
type Delivery struct {
	Seq     uint64
	Payload []byte // valid until the next Next
}

// Consume joins channel name as part, taking the first consumer place no
// live process holds (a dead one's place is taken over: its batches not
// acked are delivered again). It waits up to opts.Wait for the channel.
func (s *Segment) Consume(ctx context.Context, part *Participant, name string, opts ChannelOptions) (*Consumer, error) {
	if err := ValidChannelName(name); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(opts.Wait)
	for {
		c, err := s.join(ctx, part, name, opts)
		if err == nil || !errors.Is(err, errNoChannel) || !time.Now().Before(deadline) {
			if errors.Is(err, errNoChannel) && opts.Wait > 0 {
				err = fmt.Errorf("%w (waited %v)", err, opts.Wait)
			}
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

var errNoChannel = errors.New("no such channel")

func (s *Segment) join(ctx context.Context, part *Participant, name string, opts ChannelOptions) (*Consumer, error) {
	unlockTable, err := s.lockChannelTable(ctx)
	if err != nil {
		return nil, err
	}
	defer unlockTable()
	i := s.findChannel(name)
	if i < 0 {
		return nil, fmt.Errorf("cxl: segment %s: channel %s: %w", s.name, name, errNoChannel)
	}
	n := int(s.u32(s.chanOff(i) + chConsumers).Load())
	if n < 1 || n > MaxConsumers {
		return nil, fmt.Errorf("cxl: segment %s: channel %s: %d consumers: %w", s.name, name, n, ErrCorrupt)
	}
	for k := 0; k < n; k++ {
		co := s.consumerOff(i, k)
		holder := int(s.u32(co).Load()) - 1
		if holder >= 0 && s.slotAlive(holder) {
			continue
		}
		r, err := s.ringOf(i, k, false, opts.Ring)
		if err != nil {
			return nil, err
		}
		s.u32(co).Store(uint32(part.slot + 1))
		if holder >= 0 {
			s.u32(co + 4).Add(1) // a takeover
		}
		r.Rewind()
		return &Consumer{seg: s, part: part, idx: i, k: k, ring: r, wait: opts.Wait, next: r.Acked(), done: map[uint64]bool{}, hold: opts.Hold}, nil
	}
	return nil, fmt.Errorf("cxl: segment %s: channel %s: all %d consumer places are held by live processes", s.name, name, n)
}

// ChannelSchema waits up to wait (or until ctx ends) for channel name to
// be made and returns its schema.
func (s *Segment) ChannelSchema(ctx context.Context, name string, wait time.Duration) ([]byte, error) {
	deadline := time.Now().Add(wait)
	for {
		unlockTable, err := s.lockChannelTable(ctx)
		if err != nil {
			return nil, err
		}
		i := s.findChannel(name)
		var schema []byte
		if i >= 0 {
			schema, err = s.channelSchema(i)
		}
		unlockTable()
		if i >= 0 || !time.Now().Before(deadline) {
			if i < 0 {
				return nil, fmt.Errorf("cxl: segment %s: channel %s: %w (waited %v)", s.name, name, errNoChannel, wait)
			}
			return schema, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Schema is the channel's schema, as its producer gave it.
func (c *Consumer) Schema() ([]byte, error) { return c.seg.channelSchema(c.idx) }

// Index is the consumer's place in the channel (0-based).
func (c *Consumer) Index() int { return c.k }

// ErrProducerFailed is wrapped by Next's error when the producer said it
// failed.
var ErrProducerFailed = errors.New("the producer failed")

// producerAlive fails once the producer said it failed, or the channel has
// had no live producer for c.wait.
func (c *Consumer) producerAlive() func() error {
	var w absence
	return func() error {
		if c.seg.u32(c.seg.chanOff(c.idx)+chFlags).Load()&chanFailed != 0 {
			return ErrProducerFailed
		}
		slot := int(c.seg.u32(c.seg.chanOff(c.idx)+chProducer).Load()) - 1
		return w.check(c.seg.slotAlive(slot), c.wait, func() error {
			return fmt.Errorf("channel %s has had no live producer for %v", c.seg.chanName(c.idx), c.wait)
		})
	}
}

// Next returns the next batch's descriptor, or io.EOF after the last one.
// A descriptor that is not what a producer writes is an error naming the
// segment and offset.
func (c *Consumer) Next(ctx context.Context) (Delivery, error) {
	if c.ended {
		return Delivery{}, io.EOF
	}
	alive := c.producerAlive()
	for {
		if c.hold && c.ring.Len() == 0 && c.next-c.ring.Acked() >= uint64(c.ring.Cap()) {
			return Delivery{}, fmt.Errorf("cxl: segment %s: channel %s: this consumer holds every batch until its output is final, and it holds %d, all its ring has room for: the producer cannot publish more; make the channel's capacity larger than the stream's batches", c.seg.name, c.seg.chanName(c.idx), c.ring.Cap())
		}
		e, err := c.ring.Pop(ctx, alive)
		if err != nil {
			return Delivery{}, err
		}
		if e.A == 0 && e.B == 0 {
			c.ended = true
			c.mu.Lock()
			if e.Seq >= c.next {
				c.next = e.Seq + 1
			}
			c.mu.Unlock()
			c.Release(e.Seq) // the marker holds nothing
			return Delivery{}, io.EOF
		}
		c.mu.Lock()
		dup := e.Seq < c.next
		c.mu.Unlock()
		if dup {
			c.Release(e.Seq) // delivered before a takeover: drop it
			continue
		}
		d, err := c.read(e)
		if err != nil {
			return Delivery{}, err
		}
		c.mu.Lock()
		c.next = e.Seq + 1
		c.mu.Unlock()
		return d, nil
	}
}

// read copies the descriptor e points at out of the segment and checks
// the copy.
func (c *Consumer) read(e Entry) (Delivery, error) {
	s := c.seg
	off, n := int64(e.A), int64(e.B)
	where := fmt.Sprintf("cxl: segment %s: channel %s: batch %d: descriptor at offset %d", s.name, s.chanName(c.idx), e.Seq, off)
	if e.A > uint64(s.hdr.DataOff+s.hdr.DataBytes) || off < s.hdr.DataOff || off%8 != 0 ||
		n < DescHeaderBytes || n > MaxDescBytes || off > s.hdr.DataOff+s.hdr.DataBytes-n {
		return Delivery{}, fmt.Errorf("%s, %d bytes: not 8-byte aligned inside the data region [%d, %d): %w", where, n, s.hdr.DataOff, s.hdr.DataOff+s.hdr.DataBytes, ErrCorrupt)
	}
	c.desc = append(c.desc[:0], s.mem[off:off+n]...)
	b := c.desc
	le := binary.LittleEndian
	switch {
	case le.Uint32(b[0:]) != descMagic:
		return Delivery{}, fmt.Errorf("%s: magic %#x: %w", where, le.Uint32(b[0:]), ErrCorrupt)
	case int64(le.Uint32(b[4:])) != n:
		return Delivery{}, fmt.Errorf("%s: %d bytes, the ring says %d: %w", where, le.Uint32(b[4:]), n, ErrCorrupt)
	case le.Uint64(b[8:]) != e.Seq:
		return Delivery{}, fmt.Errorf("%s: sequence %d, the ring says %d: %w", where, le.Uint64(b[8:]), e.Seq, ErrCorrupt)
	case le.Uint32(b[16:]) != crc32.Checksum(b[DescHeaderBytes:], castagnoli):
		return Delivery{}, fmt.Errorf("%s: payload checksum %#08x does not match: %w", where, le.Uint32(b[16:]), ErrCorrupt)
	}
	return Delivery{Seq: e.Seq, Payload: b[DescHeaderBytes:]}, nil
}

// Release says the consumer is done with batch seq (and its buffers);
// batches may be released in any order, and the producer learns of them
// in sequence order. A holding consumer (ChannelOptions.Hold) acks only
// with AckAll.
func (c *Consumer) Release(seq uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	acked := c.ring.Acked()
	if seq < acked {
		return nil
	}
	if seq >= c.next {
		return fmt.Errorf("cxl: segment %s: channel %s: release batch %d, not delivered yet (next %d)", c.seg.name, c.seg.chanName(c.idx), seq, c.next)
	}
	if c.hold {
		return nil // AckAll acks
	}
	c.done[seq] = true
	n := acked
	for c.done[n] {
		delete(c.done, n)
		n++
	}
	if n > acked {
		return c.ring.Ack(n)
	}
	return nil
}

// AckAll acks every batch delivered so far, released or not (the end
// marker included once Next returned io.EOF): for a consumer that holds
// its batches until its output is final.
func (c *Consumer) AckAll() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.done)
	return c.ring.Ack(c.next)
}

// Leave gives up the consumer's place (after the end of the stream, or to
// let another process take over).
func (c *Consumer) Leave() {
	c.seg.u32(c.seg.consumerOff(c.idx, c.k)).CompareAndSwap(uint32(c.part.slot+1), 0)
}

// forgetSlot frees the channel places participant slot i (dead) held, so
// that a successor can take them (a slot number is reused by the next
// process to attach: a place must not look held by it).
func (s *Segment) forgetSlot(i int) {
	me := uint32(i + 1)
	for ch := 0; ch < s.hdr.Channels.Count; ch++ {
		off := s.chanOff(ch)
		if s.u32(off+chState).Load() != 1 {
			continue
		}
		s.u32(off+chProducer).CompareAndSwap(me, 0)
		n := min(int(s.u32(off+chConsumers).Load()), MaxConsumers)
		for k := 0; k < n; k++ {
			s.u32(s.consumerOff(ch, k)).CompareAndSwap(me, 0)
		}
	}
}

// anyUnacked says whether some channel has batches some consumer (alive
// or not) has not acked. Rings that do not check out count as unacked:
// nothing is freed on doubt.
func (s *Segment) anyUnacked() bool {
	for ch := 0; ch < s.hdr.Channels.Count; ch++ {
		off := s.chanOff(ch)
		if s.u32(off+chState).Load() != 1 {
			continue
		}
		published := s.u64(off + chPublished).Load()
		n := min(int(s.u32(off+chConsumers).Load()), MaxConsumers)
		for k := 0; k < n; k++ {
			ro := int64(s.u64(s.consumerOff(ch, k) + 8).Load())
			if s.checkRange(ro, ringHeader, 64) != nil {
				return true
			}
			if acked := s.u64(ro + ringAcked).Load(); acked < published {
				return true
			}
		}
	}
	return false
}

// retireSlotExtents marks the extents slot i held as retired: kept until
// a sweep finds every channel drained.
func (s *Segment) retireSlotExtents(i int) {
	me := uint32(i + 1)
	for x := 0; x < s.hdr.Extents.Count; x++ {
		s.u32(s.extentEntry(x)+extOwner).CompareAndSwap(me, retiredOwner)
	}
}

// sweep frees retired extents once no channel has a batch not acked.
func (s *Segment) sweep() {
	if s.anyUnacked() {
		return
	}
	for x := 0; x < s.hdr.Extents.Count; x++ {
		e := s.extentEntry(x)
		if s.u32(e+extOwner).Load() == retiredOwner {
			s.u32(e + extRun).Store(0)
			s.u32(e + extOwner).Store(0)
		}
	}
}
