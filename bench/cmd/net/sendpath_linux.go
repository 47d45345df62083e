//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/io/netzc"
	_ "github.com/zflowdev/zflow/io/netzc/uringzc" // the uring_zc send path
)

// A connection to the receiver: the sender writes an 8-byte header (the
// receiver's read size, the message size as iperf3's server reads with -l),
// then the messages, then shuts its side; the receiver answers with
// replySize bytes: the bytes it read and the user and system CPU
// nanoseconds its process used while reading them.
const (
	headerSize = 8
	replySize  = 24
)

// pathResult is one run of one send path at one message size.
type pathResult struct {
	Bytes          int64
	Seconds        float64   // from the first Send to the receiver's reply
	SendUs         []float64 // per message: Send's duration
	ReleaseUs      []float64 // per message: from the start of its Send to its release
	SenderCPUSec   float64
	ReceiverCPUSec float64
	Stats          netzc.Stats
	Reason         string
}

// sendTimes records when each message's Send started and when its release
// ran. Releases run in message order on every path (a zero-copy list is
// released only after every list before it), so one release function
// serves all messages and allocates nothing per message.
type sendTimes struct {
	base    time.Time
	starts  []time.Duration
	sendUs  []float64
	relUs   []float64
	release func()
}

func newSendTimes() *sendTimes {
	t := &sendTimes{base: time.Now(), starts: make([]time.Duration, 0, 1<<16),
		sendUs: make([]float64, 0, 1<<16), relUs: make([]float64, 0, 1<<16)}
	t.release = func() {
		if i := len(t.relUs); i < len(t.starts) {
			t.relUs = append(t.relUs, us(time.Since(t.base)-t.starts[i]))
		}
	}
	return t
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// runPath sends msg, as one buffer per Send, through mode for d to the
// receiver at addr (dialled from namespace ns), and waits for the
// receiver's count.
func runPath(ctx context.Context, ns, addr string, mode netzc.Mode, msg []byte, d time.Duration) (pathResult, error) {
	return runMessages(ctx, ns, addr, mode, len(msg), func() []byte { return msg }, d)
}

// runChunks sends data in consecutive messages of size bytes through mode,
// once, to the receiver at addr (from namespace ns).
func runChunks(ctx context.Context, ns, addr string, mode netzc.Mode, data []byte, size int) (pathResult, error) {
	off := 0
	next := func() []byte {
		if off >= len(data) {
			return nil
		}
		b := data[off:min(off+size, len(data))]
		off += len(b)
		return b
	}
	return runMessages(ctx, ns, addr, mode, size, next, time.Duration(1<<62))
}

// runMessages sends the messages next returns (until nil, or for d)
// through mode to the receiver at addr (from namespace ns), which reads
// with buffers of size bytes, and waits for the receiver's count.
func runMessages(ctx context.Context, ns, addr string, mode netzc.Mode, size int, next func() []byte, d time.Duration) (pathResult, error) {
	conn, err := dialIn(ns, addr)
	if err != nil {
		return pathResult{}, fmt.Errorf("dial %s: %w", addr, err)
	}
	var hdr [headerSize]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(size))
	if _, err := conn.Write(hdr[:]); err != nil {
		conn.Close()
		return pathResult{}, err
	}
	snd, err := netzc.New(conn, mode, netzc.Options{})
	if err != nil {
		conn.Close()
		return pathResult{}, err
	}
	res, err := sendFor(ctx, snd, conn, next, d)
	if cerr := snd.Close(ctx, err != nil); err == nil {
		err = cerr
	}
	return res, err
}

// sendFor is the measured part of runMessages: the sending loop, the flush
// (every release ran), then the receiver's reply.
func sendFor(ctx context.Context, snd netzc.Sender, conn *net.TCPConn, next func() []byte, d time.Duration) (pathResult, error) {
	bufs := make([][]byte, 1)
	t := newSendTimes()
	cpu0 := cpuSelf()
	for time.Since(t.base) < d && ctx.Err() == nil {
		if bufs[0] = next(); bufs[0] == nil {
			break
		}
		start := time.Since(t.base)
		t.starts = append(t.starts, start)
		if err := snd.Send(bufs, t.release); err != nil {
			return pathResult{}, err
		}
		t.sendUs = append(t.sendUs, us(time.Since(t.base)-start))
	}
	if err := snd.Flush(ctx); err != nil {
		return pathResult{}, err
	}
	senderCPU := cpuSelf() - cpu0
	if err := conn.CloseWrite(); err != nil {
		return pathResult{}, err
	}
	reply, err := readReply(conn)
	if err != nil {
		return pathResult{}, err
	}
	res := pathResult{Seconds: time.Since(t.base).Seconds(), SendUs: t.sendUs, ReleaseUs: t.relUs,
		SenderCPUSec: senderCPU, Stats: snd.Stats(), Reason: snd.Reason()}
	res.Bytes = int64(binary.LittleEndian.Uint64(reply[0:]))
	res.ReceiverCPUSec = float64(binary.LittleEndian.Uint64(reply[8:])+binary.LittleEndian.Uint64(reply[16:])) / 1e9
	if res.Bytes != res.Stats.Bytes {
		return res, fmt.Errorf("the receiver read %d bytes, %d were sent", res.Bytes, res.Stats.Bytes)
	}
	return res, nil
}

// readReply reads the receiver's count outside the netpoller
// (netzc.Reader: a zero-copy socket's completions confuse it).
func readReply(conn *net.TCPConn) ([replySize]byte, error) {
	var b [replySize]byte
	r, err := netzc.NewReader(conn)
	if err != nil {
		return b, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return b, fmt.Errorf("read the receiver's reply: %w", err)
	}
	return b, nil
}

// cpuSelf is this process's user+system CPU seconds so far.
func cpuSelf() float64 {
	u, s := rusageSelf()
	return (u + s).Seconds()
}

func rusageSelf() (user, sys time.Duration) {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// receive is the receiver process (-receiver): it listens on addr, says
// "listening HOST:PORT" on out, and serves connections one after another
// until it is killed.
func receive(addr string, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "listening %s\n", ln.Addr())
	var buf []byte
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		if buf, err = serve(c.(*net.TCPConn), buf); err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintf(out, "receiver: %v\n", err)
		}
		c.Close()
	}
}

// serve reads one connection to its end with reads of the header's size
// (buf is reused across connections) and replies with the count and the
// CPU used.
func serve(c *net.TCPConn, buf []byte) ([]byte, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return buf, err
	}
	size := int(min(binary.LittleEndian.Uint64(hdr[:]), 64<<20))
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:max(size, 1)]
	u0, s0 := rusageSelf()
	var n int64
	for {
		k, err := c.Read(buf)
		n += int64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return buf, err
		}
	}
	u1, s1 := rusageSelf()
	var reply [replySize]byte
	binary.LittleEndian.PutUint64(reply[0:], uint64(n))
	binary.LittleEndian.PutUint64(reply[8:], uint64(u1-u0))
	binary.LittleEndian.PutUint64(reply[16:], uint64(s1-s0))
	_, err := c.Write(reply[:])
	return buf, err
}
