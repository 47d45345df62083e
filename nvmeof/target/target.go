package target

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/zflowdev/zflow/nvmeof/nvme"
)

// Config describes the NVM subsystems served on the listeners handed to
// Serve, and the limits of their controllers.
type Config struct {
	// SubNQN, Namespaces and AllowHosts describe one subsystem (as the
	// fields of Subsystem do); leave SubNQN empty to list them all in
	// Subsystems.
	SubNQN     string
	Namespaces []Namespace // NSID i+1 is Namespaces[i]
	AllowHosts []string
	// Subsystems are more subsystems, served on the same ports.
	Subsystems []Subsystem
	// MaxH2CData is the MAXH2CDATA granted in ICResp (default 128 KiB).
	MaxH2CData uint32
	// InCapsule is how many bytes of write data an I/O command may carry in
	// its capsule (default 8192; IOCCSZ says so).
	InCapsule uint32
	// MaxIOQueues is the most I/O queues a controller grants (default 16).
	MaxIOQueues uint16
	// MQES is the largest submission queue, 0's based (default 127).
	MQES uint16
	// C2HChunk is the most data one C2HData carries (default 128 KiB).
	C2HChunk int
	// R2TChunk is the most data one R2T asks for; a larger write gets
	// several R2Ts, one after the other. 0 asks for all of it in one R2T
	// (the host still splits it into H2CData PDUs of MAXH2CDATA).
	R2TChunk uint32
}

// Limits a target applies.
const (
	defaultMaxH2CData = 128 << 10
	defaultInCapsule  = 8192
	adminInCapsule    = 8192 // admin and fabrics commands, as the Linux host allows
	// mdts is the largest transfer: 2^mdts pages of 4 KiB = 1 MiB.
	mdts        = 8
	maxTransfer = 4096 << mdts
	kas         = 10 // keep-alive granularity, 100 ms units
	aerl        = 3  // 0's based: four AERs may be outstanding
	capTimeout  = 0x1E
)

// Target serves NVM subsystems and the discovery subsystem over NVMe/TCP.
type Target struct {
	cfg  Config
	subs []*Subsystem // in the order of the discovery log

	mu       sync.Mutex
	ctrls    map[uint16]*controller
	nextID   uint16
	ports    []*port
	nextPort uint16
	genctr   uint64 // the discovery log's generation: changes with ports
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// port is a listener: one that serves the subsystems and the discovery
// subsystem, listed in the discovery log, or one for discovery only.
type port struct {
	ln            net.Listener
	id            uint16
	discoveryOnly bool
}

// New checks cfg and returns a target ready to Serve.
func New(cfg Config) (*Target, error) {
	var subs []*Subsystem
	if cfg.SubNQN != "" || len(cfg.Subsystems) == 0 {
		subs = append(subs, &Subsystem{NQN: cfg.SubNQN, Namespaces: cfg.Namespaces, AllowHosts: cfg.AllowHosts})
	}
	for i := range cfg.Subsystems {
		subs = append(subs, &cfg.Subsystems[i])
	}
	seen := map[string]bool{}
	for _, sub := range subs {
		if err := sub.check(); err != nil {
			return nil, err
		}
		if seen[sub.NQN] {
			return nil, fmt.Errorf("target: subsystem %s twice", sub.NQN)
		}
		seen[sub.NQN] = true
	}
	if cfg.MaxH2CData == 0 {
		cfg.MaxH2CData = defaultMaxH2CData
	}
	if cfg.MaxH2CData < 4096 || cfg.MaxH2CData%4 != 0 {
		return nil, fmt.Errorf("target: MAXH2CDATA %d: want a multiple of 4 of at least 4096", cfg.MaxH2CData)
	}
	if cfg.InCapsule == 0 {
		cfg.InCapsule = defaultInCapsule
	}
	if cfg.InCapsule%16 != 0 {
		return nil, fmt.Errorf("target: in-capsule size %d: want a multiple of 16", cfg.InCapsule)
	}
	if cfg.MaxIOQueues == 0 {
		cfg.MaxIOQueues = 16
	}
	if cfg.MQES == 0 {
		cfg.MQES = 127
	}
	if cfg.C2HChunk <= 0 {
		cfg.C2HChunk = 128 << 10
	}
	return &Target{cfg: cfg, subs: subs, ctrls: map[uint16]*controller{}, nextID: 1, nextPort: 1, conns: map[net.Conn]struct{}{}}, nil
}

// subsystem is the subsystem named nqn, nil when there is none.
func (t *Target) subsystem(nqn string) *Subsystem {
	for _, s := range t.subs {
		if s.NQN == nqn {
			return s
		}
	}
	return nil
}

// Serve accepts connections on ln, one queue each, until ln is closed or
// Close is called; it returns nil then. Hosts reach every subsystem and
// the discovery subsystem on ln, and the discovery log lists ln.
func (t *Target) Serve(ln net.Listener) error { return t.serve(ln, false) }

// ServeDiscovery is Serve for a port of the discovery subsystem only
// (8009 by convention): it is not listed in the discovery log, and
// Connects to other subsystems on it are refused.
func (t *Target) ServeDiscovery(ln net.Listener) error { return t.serve(ln, true) }

func (t *Target) serve(ln net.Listener, discoveryOnly bool) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		ln.Close()
		return nil
	}
	p := &port{ln: ln, id: t.nextPort, discoveryOnly: discoveryOnly}
	t.nextPort++
	t.ports = append(t.ports, p)
	t.genctr++
	t.wg.Add(1)
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.ports = slices.DeleteFunc(t.ports, func(o *port) bool { return o == p })
		t.genctr++
		t.mu.Unlock()
		t.wg.Done()
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			t.mu.Lock()
			closed := t.closed
			t.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("target: accept on %s: %w", ln.Addr(), err)
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			nc.Close()
			return nil
		}
		t.conns[nc] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.wg.Done()
			q := newQueue(t, p, nc)
			q.serve()
			t.mu.Lock()
			delete(t.conns, nc)
			t.mu.Unlock()
		}()
	}
}

// Controllers is the number of controllers (host associations) alive.
func (t *Target) Controllers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ctrls)
}

// Close stops the listeners, closes every connection and waits until all
// of the target's goroutines have returned.
func (t *Target) Close() error {
	t.mu.Lock()
	t.closed = true
	for _, p := range t.ports {
		p.ln.Close()
	}
	for nc := range t.conns {
		nc.Close()
	}
	for _, c := range t.ctrls {
		c.stopTimer()
	}
	t.mu.Unlock()
	t.wg.Wait()
	return nil
}

// newController makes a controller of sub (nil: a discovery controller)
// for an admin Connect.
func (t *Target) newController(sub *Subsystem, hostNQN string, hostID [16]byte, kato uint32) *controller {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := t.nextID
	for t.ctrls[id] != nil || id == 0 || id >= 0xFFF0 {
		id++
		if id >= 0xFFF0 {
			id = 1
		}
	}
	t.nextID = id + 1
	c := &controller{t: t, sub: sub, id: id, hostNQN: hostNQN, hostID: hostID, queues: map[uint16]*queue{}, nq: t.cfg.MaxIOQueues - 1}
	c.kato = kato
	t.ctrls[id] = c
	return c
}

func (t *Target) controller(id uint16) *controller {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ctrls[id]
}

func (t *Target) dropController(c *controller) {
	t.mu.Lock()
	if t.ctrls[c.id] == c {
		delete(t.ctrls, c.id)
	}
	t.mu.Unlock()
	c.stopTimer()
}

// controller is one host's association: an admin queue and its I/O
// queues, the properties, and the keep-alive timer.
type controller struct {
	t       *Target
	sub     *Subsystem // nil for a discovery controller
	id      uint16
	hostNQN string
	hostID  [16]byte

	mu      sync.Mutex
	cc      uint32
	csts    uint32
	nq      uint16 // I/O queues granted, 0's based
	kato    uint32 // ms
	queues  map[uint16]*queue
	kaTimer *time.Timer
	aers    int
}

// enabled reports CC.EN = 1 and CSTS.RDY = 1.
func (c *controller) enabled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cc&nvme.CCEnable != 0 && c.csts&nvme.CSTSReady != 0
}

// setCC applies a Property Set of CC (docs/nvme-tcp.md, 5.2).
func (c *controller) setCC(v uint32) {
	c.mu.Lock()
	old := c.cc
	c.cc = v
	var drop []*queue
	switch {
	case old&nvme.CCEnable == 0 && v&nvme.CCEnable != 0:
		iosqes, iocqes := v>>nvme.CCIOSQESShift&0xF, v>>nvme.CCIOCQESShift&0xF
		mps, ams, css := v>>nvme.CCMPSShift&0xF, v>>nvme.CCAMSShift&0x7, v>>nvme.CCCSSShift&0x7
		if iosqes != 6 || iocqes != 4 || mps != 0 || ams != 0 || css != 0 {
			c.csts |= nvme.CSTSFatal
		} else {
			c.csts = c.csts&^nvme.CSTSFatal | nvme.CSTSReady
		}
	case old&nvme.CCEnable != 0 && v&nvme.CCEnable == 0:
		c.csts &^= nvme.CSTSReady | 3<<nvme.CSTSShstShift
		for qid, q := range c.queues {
			if qid != 0 {
				drop = append(drop, q)
			}
		}
	}
	if v>>nvme.CCShnShift&nvme.CCShnMask != 0 {
		// Nothing is cached: shutdown is complete at once.
		c.csts = c.csts&^(3<<nvme.CSTSShstShift) | nvme.CSTSShstDone
	}
	c.mu.Unlock()
	for _, q := range drop {
		q.conn.Close()
	}
}

func (c *controller) properties() (cc, csts uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cc, c.csts
}

// keepAlive restarts the keep-alive timer; with KATO 0 there is none. The
// timeout is KATO rounded up to KAS, and on expiry every connection of the
// controller is closed.
func (c *controller) keepAlive() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kato == 0 {
		return
	}
	step := uint32(kas * 100)
	d := time.Duration((c.kato+step-1)/step*step) * time.Millisecond
	if c.kaTimer != nil {
		c.kaTimer.Reset(d)
		return
	}
	c.kaTimer = time.AfterFunc(d, c.expire)
}

func (c *controller) expire() {
	c.mu.Lock()
	qs := make([]*queue, 0, len(c.queues))
	for _, q := range c.queues {
		qs = append(qs, q)
	}
	c.mu.Unlock()
	for _, q := range qs {
		q.conn.Close()
	}
}

func (c *controller) stopTimer() {
	c.mu.Lock()
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
	c.mu.Unlock()
}
