package cluster

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/zflowdev/zflow/engine"
)

// Mesh connects the workers of a cluster run to each other for the
// exchanges across hosts (it is their engine.Peers). Each worker listens
// on one data port; for every exchange, worker i dials every other worker
// j once and sends on that connection, and receives on the one j dialled.
// A connection starts with a preamble: the magic "ZFX1", the run's token
// (a secret the coordinator gave every worker, so that nothing else on
// the pod network joins a run), the epoch (which try of the exchange
// stage this is: a connection of an earlier one is turned away), the
// sender's and the receiver's index and the exchange's name.
type Mesh struct {
	index, count int
	token        [TokenSize]byte
	ln           *net.TCPListener
	// Timeout bounds how long Connect waits for every peer; default 60s.
	Timeout time.Duration

	mu     sync.Mutex
	epoch  uint64
	addrs  []string
	slots  map[meshKey]chan *net.TCPConn
	closed bool
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type meshKey struct {
	epoch    uint64
	exchange string
	from     int
}

// TokenSize is the length of a run's mesh token.
const TokenSize = 16

const (
	meshMagic    = "ZFX1"
	meshFixed    = 4 + TokenSize + 8 + 4 + 4 + 2
	maxMeshName  = 253
	preambleWait = 10 * time.Second
)

// NewMesh listens on listen (HOST:PORT; port 0 picks one) as worker index
// of count, with the run's token.
func NewMesh(index, count int, token [TokenSize]byte, listen string) (*Mesh, error) {
	if index < 0 || index >= count {
		return nil, fmt.Errorf("cluster: mesh: worker %d of %d", index, count)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("cluster: mesh: %w", err)
	}
	m := &Mesh{index: index, count: count, token: token, ln: l.(*net.TCPListener), Timeout: 60 * time.Second,
		slots: map[meshKey]chan *net.TCPConn{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.wg.Add(1)
	go m.accept()
	return m, nil
}

// Addr is the address the mesh listens on.
func (m *Mesh) Addr() net.Addr { return m.ln.Addr() }

// SetEpoch starts try epoch of the exchange stage, with addrs[j] worker
// j's data address; connections of earlier epochs still waiting are
// closed.
func (m *Mesh) SetEpoch(epoch uint64, addrs []string) error {
	if len(addrs) != m.count {
		return fmt.Errorf("cluster: mesh: %d addresses for %d workers", len(addrs), m.count)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.epoch, m.addrs = epoch, append([]string(nil), addrs...)
	for k, ch := range m.slots {
		if k.epoch < epoch {
			closeSlot(ch)
			delete(m.slots, k)
		}
	}
	return nil
}

func closeSlot(ch chan *net.TCPConn) {
	select {
	case c := <-ch:
		c.Close()
	default:
	}
}

// Close stops listening and closes the connections nobody took.
func (m *Mesh) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.cancel()
	for k, ch := range m.slots {
		closeSlot(ch)
		delete(m.slots, k)
	}
	m.mu.Unlock()
	err := m.ln.Close()
	m.wg.Wait()
	return err
}

func (m *Mesh) accept() {
	defer m.wg.Done()
	pending := make(chan struct{}, maxPending) // connections still in their preamble
	backoff := 5 * time.Millisecond
	for {
		c, err := m.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || m.ctx.Err() != nil {
				return
			}
			// Out of descriptors, say: try again rather than stop
			// listening for good.
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		select {
		case pending <- struct{}{}:
		default:
			c.Close() // too many unauthenticated connections at once
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer func() { <-pending }()
			if err := m.admit(c); err != nil {
				c.Close()
			}
		}()
	}
}

// maxPending bounds the connections whose preamble has not been read yet.
const maxPending = 64

// admit reads a connection's preamble and files it under its key.
func (m *Mesh) admit(c *net.TCPConn) error {
	stop := context.AfterFunc(m.ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	c.SetReadDeadline(time.Now().Add(preambleWait))
	var h [meshFixed]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return err
	}
	if string(h[:4]) != meshMagic {
		return errors.New("not a zflow exchange")
	}
	if subtle.ConstantTimeCompare(h[4:4+TokenSize], m.token[:]) != 1 {
		return errors.New("another run's token")
	}
	p := h[4+TokenSize:]
	epoch := binary.BigEndian.Uint64(p)
	from, to := int(binary.BigEndian.Uint32(p[8:])), int(binary.BigEndian.Uint32(p[12:]))
	n := int(binary.BigEndian.Uint16(p[16:]))
	if to != m.index || from < 0 || from >= m.count || from == m.index || n == 0 || n > maxMeshName {
		return fmt.Errorf("preamble from %d to %d, name of %d bytes", from, to, n)
	}
	name := make([]byte, n)
	if _, err := io.ReadFull(c, name); err != nil {
		return err
	}
	c.SetReadDeadline(time.Time{})
	m.mu.Lock()
	defer m.mu.Unlock()
	// A connection of a later epoch waits for it: a peer that got the
	// coordinator's "run" first may dial before this worker has torn down
	// the epoch before. One of an earlier epoch is stale.
	if m.closed || epoch < m.epoch {
		return errors.New("an earlier epoch")
	}
	select {
	case m.slot(meshKey{epoch, string(name), from}) <- c:
		return nil
	default:
		return errors.New("a second connection for one exchange")
	}
}

// slot is the queue of key's connection (m.mu held).
func (m *Mesh) slot(k meshKey) chan *net.TCPConn {
	ch, ok := m.slots[k]
	if !ok {
		ch = make(chan *net.TCPConn, 1)
		m.slots[k] = ch
	}
	return ch
}

// Connect makes exchange's connections for the current epoch
// (engine.Peers).
func (m *Mesh) Connect(ctx context.Context, exchange string) (out, in []*net.TCPConn, err error) {
	if len(exchange) == 0 || len(exchange) > maxMeshName {
		return nil, nil, fmt.Errorf("cluster: mesh: exchange name %q", exchange)
	}
	m.mu.Lock()
	epoch, addrs := m.epoch, m.addrs
	m.mu.Unlock()
	if addrs == nil {
		return nil, nil, errors.New("cluster: mesh: no peer addresses yet (SetEpoch)")
	}
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	out = make([]*net.TCPConn, m.count)
	in = make([]*net.TCPConn, m.count)
	errs := make([]error, 2*m.count)
	var wg sync.WaitGroup
	for j := range m.count {
		if j == m.index {
			continue
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			out[j], errs[2*j] = m.dial(ctx, epoch, exchange, j, addrs[j])
		}()
		go func() {
			defer wg.Done()
			m.mu.Lock()
			ch := m.slot(meshKey{epoch, exchange, j})
			m.mu.Unlock()
			select {
			case in[j] = <-ch:
			case <-ctx.Done():
				errs[2*j+1] = fmt.Errorf("worker %d (%s) did not connect within %v", j, addrs[j], m.Timeout)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, c := range append(out, in...) {
			if c != nil {
				c.Close()
			}
		}
		return nil, nil, fmt.Errorf("cluster: exchange %s, epoch %d: %w", exchange, epoch, err)
	}
	return out, in, nil
}

// dial connects to worker j for exchange, retrying while it is not yet
// listening, and sends the preamble.
func (m *Mesh) dial(ctx context.Context, epoch uint64, exchange string, j int, addr string) (*net.TCPConn, error) {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			tc := c.(*net.TCPConn)
			h := make([]byte, meshFixed, meshFixed+len(exchange))
			copy(h, meshMagic)
			copy(h[4:], m.token[:])
			p := h[4+TokenSize:]
			binary.BigEndian.PutUint64(p, epoch)
			binary.BigEndian.PutUint32(p[8:], uint32(m.index))
			binary.BigEndian.PutUint32(p[12:], uint32(j))
			binary.BigEndian.PutUint16(p[16:], uint16(len(exchange)))
			h = append(h, exchange...)
			tc.SetWriteDeadline(time.Now().Add(preambleWait))
			if _, err := tc.Write(h); err != nil {
				tc.Close()
				return nil, fmt.Errorf("worker %d (%s): %w", j, addr, err)
			}
			tc.SetWriteDeadline(time.Time{})
			return tc, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("worker %d (%s): %w", j, addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PlanPeers stands for the workers' connections where a worker's part of
// a run is compiled only to be shown (zflow plan --cluster, and the
// coordinator's summary): running it fails.
var PlanPeers engine.Peers = planPeers{}

type planPeers struct{}

func (planPeers) Connect(context.Context, string) (out, in []*net.TCPConn, err error) {
	return nil, nil, errors.New("cluster: a plan's compile of a worker is not run, so it has no peers")
}
