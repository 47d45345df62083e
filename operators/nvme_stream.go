package operators

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"time"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/nvmeof/initiator"
)

// An Arrow IPC stream in an NVMe namespace (the nvme source and sink): at
// the configured byte offset one 4 KiB header block, then the stream's
// bytes. The header (little-endian):
//
//	0  8  magic "zflownvs"
//	8  4  version (1)
//	12 4  reserved, 0
//	16 8  length of the stream in bytes
//	24 4  CRC-32C of the stream
//	28 4  CRC-32C of bytes 0–27
//
// The sink zeroes the header before it writes the stream and writes it
// only on Commit, so a namespace whose writer failed or died holds no
// valid stream (nor the one it replaced).
const (
	nvmeHeaderSize  = 4096
	nvmeMagic       = "zflownvs"
	nvmeVersion     = 1
	nvmeChunk       = 4 << 20 // bytes per ReadAt/WriteAt: several commands in flight
	defaultHostNQN  = "nqn.2014-08.org.nvmexpress:uuid:7a666c6f-0000-4000-8000-000000000002"
	nvmeDefaultWait = 10 * time.Second
	// nvmeDefaultReconnect is shorter than the Linux host's ctrl_loss_tmo
	// (600 s): a pipeline should fail while someone still watches it.
	nvmeDefaultReconnect = 30 * time.Second
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NVMeConfig is what the nvme source and sink share: where the namespace is.
type NVMeConfig struct {
	Address        string        `zflow:"address" required:"true" doc:"HOST:PORT of the NVMe/TCP target (zflow nvmeof serve, or any NVMe/TCP controller)" example:"127.0.0.1:4420"`
	SubNQN         string        `zflow:"subnqn" required:"true" doc:"the subsystem's NQN" example:"nqn.2024-01.dev.zflow:data"`
	NSID           int           `zflow:"nsid" doc:"the namespace"`
	Offset         int64         `zflow:"offset" doc:"byte offset of the stream's header block in the namespace: a multiple of 4096"`
	Queues         int           `zflow:"queues" doc:"I/O queues (TCP connections) to use"`
	QueueDepth     int           `zflow:"queue_depth" doc:"commands in flight per queue"`
	HostNQN        string        `zflow:"hostnqn" doc:"this host's NQN (default: a fixed zflow host NQN)"`
	ConnectTimeout time.Duration `zflow:"connect_timeout" doc:"give up connecting after this long"`
	// ReconnectTimeout is how long a lost connection is retried.
	ReconnectTimeout time.Duration `zflow:"reconnect_timeout" doc:"after a lost connection (a dropped socket, a target restarted, a corrupt PDU), reconnect every queue with back-off and send the commands in flight again, for up to this long before the run fails; 0 fails at once"`
}

func defaultNVMeConfig() NVMeConfig {
	return NVMeConfig{NSID: 1, Queues: 4, QueueDepth: 32, HostNQN: defaultHostNQN, ConnectTimeout: nvmeDefaultWait, ReconnectTimeout: nvmeDefaultReconnect}
}

func (c *NVMeConfig) check() []error {
	var errs []error
	if c.Address == "" {
		errs = append(errs, engine.Errf("address", "want HOST:PORT"))
	}
	if c.NSID < 1 || c.NSID > 0xFFFFFFFE {
		errs = append(errs, engine.Errf("nsid", "want 1 to 4294967294, got %d", c.NSID))
	}
	if c.Offset < 0 || c.Offset%nvmeHeaderSize != 0 {
		errs = append(errs, engine.Errf("offset", "want a non-negative multiple of 4096, got %d", c.Offset))
	}
	if c.Queues < 1 || c.Queues > 64 {
		errs = append(errs, engine.Errf("queues", "want 1 to 64, got %d", c.Queues))
	}
	if c.QueueDepth < 1 || c.QueueDepth > 1024 {
		errs = append(errs, engine.Errf("queue_depth", "want 1 to 1024, got %d", c.QueueDepth))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, engine.Errf("connect_timeout", "must be positive, got %v", c.ConnectTimeout))
	}
	if c.ReconnectTimeout < 0 {
		errs = append(errs, engine.Errf("reconnect_timeout", "must be 0 (no reconnecting) or positive, got %v", c.ReconnectTimeout))
	}
	return errs
}

func (c *NVMeConfig) describe() string {
	return fmt.Sprintf("%s %s namespace %d at byte %d (%d queues of depth %d)", c.Address, c.SubNQN, c.NSID, c.Offset, c.Queues, c.QueueDepth)
}

// nvmeNS is a connected namespace.
type nvmeNS struct {
	cfg  *NVMeConfig
	c    *initiator.Controller
	ns   initiator.Namespace
	size int64
}

func dialNVMe(ctx context.Context, op string, cfg *NVMeConfig) (*nvmeNS, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	c, err := initiator.Connect(ctx, cfg.Address, initiator.Config{SubNQN: cfg.SubNQN, HostNQN: cfg.HostNQN,
		IOQueues: cfg.Queues, QueueDepth: cfg.QueueDepth, ReconnectTimeout: cfg.ReconnectTimeout})
	if err != nil {
		return nil, fmt.Errorf("%s: connect to %s %s: %w", op, cfg.Address, cfg.SubNQN, err)
	}
	ns, err := c.Namespace(uint32(cfg.NSID))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: namespace %d of %s: %w", op, cfg.NSID, cfg.SubNQN, err)
	}
	n := &nvmeNS{cfg: cfg, c: c, ns: ns, size: int64(ns.Blocks) << ns.BlockShift}
	if cfg.Offset+nvmeHeaderSize > n.size {
		c.Close()
		return nil, fmt.Errorf("%s: offset %d is past namespace %d of %s (%d bytes)", op, cfg.Offset, cfg.NSID, cfg.SubNQN, n.size)
	}
	return n, nil
}

// close disconnects, first saying on log (when there is one) if the
// connection was lost and restored on the way: the run went on, but
// whoever runs it should know the network or the target had a problem.
func (n *nvmeNS) close(log *slog.Logger) {
	if r := n.c.Reconnects(); r > 0 && log != nil {
		log.Warn("nvme: the connection to the target was lost and restored; the commands in flight were sent again",
			"target", n.where(), "reconnects", r, "last_failure", fmt.Sprint(n.c.LastFailure()))
	}
	n.c.Close()
}

func (n *nvmeNS) where() string {
	return fmt.Sprintf("namespace %d of %s at %s, offset %d", n.cfg.NSID, n.cfg.SubNQN, n.cfg.Address, n.cfg.Offset)
}

type nvmeHeader struct {
	length uint64
	crc    uint32
}

func (h nvmeHeader) marshal() []byte {
	b := make([]byte, nvmeHeaderSize)
	copy(b, nvmeMagic)
	binary.LittleEndian.PutUint32(b[8:], nvmeVersion)
	binary.LittleEndian.PutUint64(b[16:], h.length)
	binary.LittleEndian.PutUint32(b[24:], h.crc)
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

// parseNVMeHeader checks a header block; where names the namespace in
// errors.
func parseNVMeHeader(b []byte, where string, room int64) (nvmeHeader, error) {
	if string(b[:8]) != nvmeMagic {
		return nvmeHeader{}, fmt.Errorf("%s holds no zflow stream (no header: the first bytes are %q, not %q; a sink writes it when its run commits)", where, b[:8], nvmeMagic)
	}
	if got, want := binary.LittleEndian.Uint32(b[28:]), crc32.Checksum(b[:28], castagnoli); got != want {
		return nvmeHeader{}, fmt.Errorf("%s: the stream header is damaged (checksum %#08x, want %#08x)", where, got, want)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != nvmeVersion {
		return nvmeHeader{}, fmt.Errorf("%s: stream header version %d, this zflow reads %d", where, v, nvmeVersion)
	}
	h := nvmeHeader{length: binary.LittleEndian.Uint64(b[16:]), crc: binary.LittleEndian.Uint32(b[24:])}
	if h.length > uint64(room) {
		return nvmeHeader{}, fmt.Errorf("%s: the header says %d bytes of stream, the namespace has room for %d", where, h.length, room)
	}
	return h, nil
}

// readHeader reads and checks the stream header.
func (n *nvmeNS) readHeader() (nvmeHeader, error) {
	b := make([]byte, nvmeHeaderSize)
	if err := n.c.ReadAt(n.ns, b, n.cfg.Offset); err != nil {
		return nvmeHeader{}, fmt.Errorf("read the header of %s: %w", n.where(), err)
	}
	return parseNVMeHeader(b, n.where(), n.size-n.cfg.Offset-nvmeHeaderSize)
}

// nvmeReader reads a stream of length bytes in chunks, checking its CRC
// at the end.
type nvmeReader struct {
	n      *nvmeNS
	h      nvmeHeader
	pos    uint64
	buf    []byte
	rest   []byte
	crc    uint32
	copied int64
}

func (r *nvmeReader) Read(p []byte) (int, error) {
	if len(r.rest) == 0 {
		if r.pos == r.h.length {
			if r.crc != r.h.crc {
				return 0, fmt.Errorf("%s: the stream's checksum is %#08x, the header says %#08x", r.n.where(), r.crc, r.h.crc)
			}
			return 0, io.EOF
		}
		k := min(uint64(nvmeChunk), r.h.length-r.pos)
		if r.buf == nil {
			r.buf = make([]byte, nvmeChunk)
		}
		b := r.buf[:k]
		if err := r.n.c.ReadAt(r.n.ns, b, r.n.cfg.Offset+nvmeHeaderSize+int64(r.pos)); err != nil {
			return 0, fmt.Errorf("read %d bytes at %d of the stream in %s: %w", k, r.pos, r.n.where(), err)
		}
		r.crc = crc32.Update(r.crc, castagnoli, b)
		r.pos += k
		r.rest = b
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	r.copied += int64(n)
	return n, nil
}

// nvmeWriter gathers the stream into chunks and writes each at its place
// after the header block.
type nvmeWriter struct {
	n   *nvmeNS
	buf []byte
	pos int64 // bytes written to the namespace
	crc uint32
}

func (w *nvmeWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

func (w *nvmeWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	room := w.n.size - w.n.cfg.Offset - nvmeHeaderSize
	if w.pos+int64(len(w.buf)) > room {
		return fmt.Errorf("the stream outgrows %s: more than %d bytes", w.n.where(), room)
	}
	if err := w.n.c.WriteAt(w.n.ns, w.buf, w.n.cfg.Offset+nvmeHeaderSize+w.pos); err != nil {
		return fmt.Errorf("write %d bytes at %d of the stream in %s: %w", len(w.buf), w.pos, w.n.where(), err)
	}
	w.crc = crc32.Update(w.crc, castagnoli, w.buf)
	w.pos += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}
