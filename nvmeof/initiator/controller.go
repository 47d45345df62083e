package initiator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/zflowdev/zflow/nvmeof/nvme"
)

// Config says how to connect.
type Config struct {
	SubNQN  string
	HostNQN string
	HostID  [16]byte
	// HeaderDigest and DataDigest ask for CRC-32C digests.
	HeaderDigest, DataDigest bool
	// IOQueues is how many I/O queues to ask for (default 1); the
	// controller may grant fewer.
	IOQueues int
	// QueueDepth is the commands in flight per I/O queue (default 32).
	QueueDepth int
	// KATO is the keep-alive timeout asked for in Connect; 0 for none.
	// With one, a Keep Alive goes every KATO/2.
	KATO time.Duration
	// ReconnectTimeout, when positive, makes the controller reconnect
	// after a connection fails: the whole association again (admin and
	// I/O queues), attempts spaced by ReconnectDelay (default 100 ms),
	// doubling up to 5 s, until one succeeds or ReconnectTimeout has
	// passed since the failure. 0 means no reconnecting: a failed queue
	// stays failed. See reconnect.go for which commands are retried.
	ReconnectTimeout time.Duration
	ReconnectDelay   time.Duration
	// Dial opens each queue's connection (default: a TCP dial). Tests wrap
	// the real socket here to inject faults.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

const (
	adminDepth     = 32
	adminInCapsule = 8192
	// ccPoll is the wait between two reads of CSTS while enabling or
	// shutting down.
	ccPoll = time.Millisecond
)

var noDeadline time.Time

func (c *Config) dial(ctx context.Context, addr string) (net.Conn, error) {
	if c.Dial != nil {
		return c.Dial(ctx, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// Controller is a connected controller: its admin queue and I/O queues.
// With Config.ReconnectTimeout set it survives lost connections: see
// reconnect.go for what it promises about the commands in flight.
type Controller struct {
	cfg  Config
	addr string
	// CntlID and Identify are those of the first association; a
	// reconnection must find the same subsystem and serial number, and
	// may be given another controller id: Association says what holds
	// now.
	CntlID uint16
	// Identify is the controller's Identify Controller data.
	Identify nvme.IdentifyController

	mu         sync.Mutex
	a          *assoc        // the current association
	recovering chan struct{} // closed when the reconnection under way ends
	lost       error         // set when reconnecting gave up: final
	lastFail   error         // what made the last reconnection necessary
	reconnects int
	closed     bool

	stop      chan struct{}
	bg        sync.WaitGroup // keep-alive and reconnection goroutines
	closeOnce sync.Once
}

// assoc is one association with the controller: the admin queue and the
// I/O queues connected together, under one controller id.
type assoc struct {
	cntlID uint16
	id     nvme.IdentifyController
	admin  *Queue
	io     []*Queue
}

// Connect connects to the subsystem at addr: the admin queue, enabling
// the controller (CC.EN, then CSTS.RDY), Identify Controller, the number
// of queues, and then each I/O queue on its own connection.
func Connect(ctx context.Context, addr string, cfg Config) (*Controller, error) {
	if cfg.IOQueues <= 0 {
		cfg.IOQueues = 1
	}
	if cfg.QueueDepth <= 0 {
		cfg.QueueDepth = 32
	}
	if cfg.QueueDepth > 1024 || cfg.IOQueues > 0xFFFE {
		return nil, fmt.Errorf("initiator: %d queues of depth %d: at most 65534 of 1024", cfg.IOQueues, cfg.QueueDepth)
	}
	if cfg.ReconnectDelay <= 0 {
		cfg.ReconnectDelay = defaultReconnectDelay
	}
	c := &Controller{cfg: cfg, addr: addr, stop: make(chan struct{})}
	a, err := c.associate(ctx)
	if err != nil {
		return nil, err
	}
	c.a, c.CntlID, c.Identify = a, a.cntlID, a.id
	if cfg.KATO > 0 {
		c.bg.Add(1)
		go c.keepAlive()
	}
	return c, nil
}

// associate makes a new association: the admin queue, enabled and
// identified, and the I/O queues. On an error every queue it opened is
// closed.
func (c *Controller) associate(ctx context.Context) (*assoc, error) {
	admin, err := dialQueue(ctx, &c.cfg, c.addr, 0, adminDepth)
	if err != nil {
		return nil, err
	}
	a := &assoc{admin: admin}
	admin.onFail = func() { c.queueFailed(a) }
	cap, err := a.enable(ctx, &c.cfg)
	if err == nil && c.cfg.SubNQN != nvme.DiscoveryNQN {
		err = a.connectIO(ctx, c, cap)
	}
	if err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

// enable sends the admin queue's Connect, enables the controller and
// identifies it; it returns CAP.
func (a *assoc) enable(ctx context.Context, cfg *Config) (uint64, error) {
	cqe, err := a.connectQueue(cfg, a.admin, nvme.CntlIDDynamic, adminDepth)
	if err != nil {
		return 0, err
	}
	a.cntlID = uint16(cqe.DW0)
	cap, err := a.propertyGet(nvme.PropCAP, true)
	if err != nil {
		return 0, err
	}
	if err := a.propertySet(nvme.PropCC, uint64(nvme.CCValue(true, 0))); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(time.Duration(nvme.CAPTimeout(cap)+1) * 500 * time.Millisecond)
	for {
		csts, err := a.propertyGet(nvme.PropCSTS, false)
		if err != nil {
			return 0, err
		}
		if csts&nvme.CSTSFatal != 0 {
			return 0, fmt.Errorf("initiator: controller %d reports a fatal status (CSTS %#x) after CC.EN", a.cntlID, csts)
		}
		if csts&nvme.CSTSReady != 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("initiator: controller %d not ready within CAP.TO", a.cntlID)
		}
		if err := sleep(ctx, ccPoll); err != nil {
			return 0, err
		}
	}
	buf := make([]byte, nvme.IdentifySize)
	if _, err := a.admin.Submit(nvme.NewIdentify(0, nvme.CNSController, 0), buf, false); err != nil {
		return 0, err
	}
	if err := a.id.Unmarshal(buf); err != nil {
		return 0, err
	}
	id := &a.id
	switch {
	case id.CntlID != a.cntlID:
		return 0, fmt.Errorf("initiator: Identify Controller says controller %d, Connect said %d", id.CntlID, a.cntlID)
	case id.ICDOFF != 0 || id.SGLS&3 == 0 || (cfg.SubNQN != nvme.DiscoveryNQN && (id.IOCCSZ < 4 || id.IORCSZ < 1)):
		// IOCCSZ and IORCSZ are reserved on a discovery controller (it has
		// no I/O queues): Linux's nvmet leaves them 0.
		return 0, fmt.Errorf("initiator: controller %d: IOCCSZ %d, IORCSZ %d, ICDOFF %d, SGLS %#x unusable over TCP", a.cntlID, id.IOCCSZ, id.IORCSZ, id.ICDOFF, id.SGLS)
	}
	return cap, nil
}

// connectIO asks for the I/O queues and connects each on its own
// connection.
func (a *assoc) connectIO(ctx context.Context, c *Controller, cap uint64) error {
	id := &a.id
	n := uint32(c.cfg.IOQueues - 1)
	cqe, err := a.admin.Submit(nvme.Command{Opcode: nvme.AdminSetFeatures, CDW10: 0x07, CDW11: n | n<<16}, nil, false)
	if err != nil {
		return err
	}
	granted := int(min(uint16(cqe.DW0), uint16(cqe.DW0>>16))) + 1
	depth := min(c.cfg.QueueDepth, int(nvme.CAPMQES(cap))+1, int(id.MaxCmd))
	inCapsule := int(id.IOCCSZ)*16 - nvme.CommandSize
	for qid := 1; qid <= min(granted, c.cfg.IOQueues); qid++ {
		q, err := dialQueue(ctx, &c.cfg, c.addr, uint16(qid), depth)
		if err != nil {
			return err
		}
		q.inCapsule = inCapsule
		q.onFail = func() { c.queueFailed(a) }
		a.io = append(a.io, q)
		if _, err := a.connectQueue(&c.cfg, q, a.cntlID, depth); err != nil {
			return err
		}
	}
	return nil
}

// connectQueue sends a queue's Fabrics Connect.
func (a *assoc) connectQueue(cfg *Config, q *Queue, cntlid uint16, depth int) (nvme.Completion, error) {
	kato := uint32(0)
	if q.qid == 0 {
		kato = uint32(cfg.KATO / time.Millisecond)
	}
	cmd := nvme.NewConnect(0, nvme.Connect{QID: q.qid, SQSize: uint16(max(depth-1, 1)), KATO: kato}) // SQSIZE 0 is invalid
	data := make([]byte, nvme.ConnectDataSize)
	d := nvme.ConnectData{HostID: cfg.HostID, CntlID: cntlid, SubNQN: cfg.SubNQN, HostNQN: cfg.HostNQN}
	if err := d.Marshal(data); err != nil {
		return nvme.Completion{}, fmt.Errorf("initiator: %w", err)
	}
	// Connect data always rides in the capsule, whatever IOCCSZ says.
	saved := q.inCapsule
	q.inCapsule = nvme.ConnectDataSize
	cqe, err := q.Submit(cmd, data, true)
	q.inCapsule = saved
	return cqe, err
}

func (a *assoc) propertyGet(offset uint32, size8 bool) (uint64, error) {
	cqe, err := a.admin.Submit(nvme.NewPropertyGet(0, offset, size8), nil, false)
	if err != nil {
		return 0, err
	}
	return uint64(cqe.DW1)<<32 | uint64(cqe.DW0), nil
}

func (a *assoc) propertySet(offset uint32, v uint64) error {
	_, err := a.admin.Submit(nvme.NewPropertySet(0, offset, false, v), nil, false)
	return err
}

// close closes every queue of the association and waits for their
// goroutines; commands still in flight fail with a *QueueError.
func (a *assoc) close() {
	for _, q := range a.io {
		q.close(errReset)
	}
	a.admin.close(errReset)
}

// PropertyGet reads a controller property (8 bytes for CAP, else 4).
func (c *Controller) PropertyGet(offset uint32, size8 bool) (uint64, error) {
	return c.current().propertyGet(offset, size8)
}

// PropertySet writes a 4-byte property.
func (c *Controller) PropertySet(offset uint32, v uint64) error {
	return c.current().propertySet(offset, v)
}

// Admin is the admin queue of the current association, for commands this
// package has no helper for (never retried).
func (c *Controller) Admin() *Queue { return c.current().admin }

// IOQueues is the number of I/O queues connected.
func (c *Controller) IOQueues() int { return len(c.current().io) }

// IOQueue is I/O queue i (0-based: QID i+1) of the current association;
// commands submitted on it directly are never retried.
func (c *Controller) IOQueue(i int) *Queue { return c.current().io[i] }

// Namespace describes an active namespace.
type Namespace struct {
	ID         uint32
	Blocks     uint64
	BlockShift uint8
}

// Namespaces lists the active namespaces (Identify CNS 2, then CNS 0 for
// each).
func (c *Controller) Namespaces() ([]Namespace, error) {
	buf := make([]byte, nvme.IdentifySize)
	if _, err := c.Admin().Submit(nvme.NewIdentify(0, nvme.CNSActiveNSList, 0), buf, false); err != nil {
		return nil, err
	}
	var out []Namespace
	for _, id := range nvme.ActiveNSList(buf) {
		ns, err := c.Namespace(id)
		if err != nil {
			return nil, err
		}
		out = append(out, ns)
	}
	return out, nil
}

// Namespace identifies namespace nsid.
func (c *Controller) Namespace(nsid uint32) (Namespace, error) {
	buf := make([]byte, nvme.IdentifySize)
	if _, err := c.Admin().Submit(nvme.NewIdentify(0, nvme.CNSNamespace, nsid), buf, false); err != nil {
		return Namespace{}, err
	}
	var id nvme.IdentifyNamespace
	if err := id.Unmarshal(buf); err != nil {
		return Namespace{}, err
	}
	if id.LBADS < 9 || id.LBADS > 16 || id.NSZE == 0 {
		return Namespace{}, fmt.Errorf("initiator: namespace %d: %d blocks of 2^%d bytes", nsid, id.NSZE, id.LBADS)
	}
	return Namespace{ID: nsid, Blocks: id.NSZE, BlockShift: id.LBADS}, nil
}

// Read reads len(buf) bytes (whole blocks) of ns from block slba on I/O
// queue q; the data lands in buf.
func (c *Controller) Read(q int, ns Namespace, slba uint64, buf []byte) error {
	return c.rw(q, nvme.IORead, ns, slba, buf)
}

// Write writes buf (whole blocks) to ns from block slba on I/O queue q.
func (c *Controller) Write(q int, ns Namespace, slba uint64, buf []byte) error {
	return c.rw(q, nvme.IOWrite, ns, slba, buf)
}

func (c *Controller) rw(q int, op uint8, ns Namespace, slba uint64, buf []byte) error {
	bs := 1 << ns.BlockShift
	if len(buf) == 0 || len(buf)%bs != 0 || len(buf)/bs > 65536 {
		return fmt.Errorf("initiator: %d bytes are not 1 to 65536 blocks of %d bytes", len(buf), bs)
	}
	cmd := nvme.Command{Opcode: op, NSID: ns.ID}
	cmd.SetLBA(slba, uint32(len(buf)/bs))
	_, err := c.submitIO(q, cmd, buf, op == nvme.IOWrite)
	return err
}

// Deallocate frees ranges of ns (Dataset Management with the deallocate
// attribute); they read as zeros afterwards when the namespace says so.
func (c *Controller) Deallocate(q int, ns Namespace, ranges []nvme.DSMRange) error {
	if len(ranges) == 0 || len(ranges) > 256 {
		return fmt.Errorf("initiator: deallocate %d ranges: want 1 to 256", len(ranges))
	}
	var buf []byte
	for _, r := range ranges {
		buf = nvme.AppendDSMRange(buf, r)
	}
	cmd := nvme.Command{Opcode: nvme.IODatasetMgmt, NSID: ns.ID, CDW10: uint32(len(ranges) - 1), CDW11: nvme.DSMDeallocate}
	_, err := c.submitIO(q, cmd, buf, true)
	return err
}

// Flush asks the controller to make what was written to ns durable.
func (c *Controller) Flush(q int, ns Namespace) error {
	_, err := c.submitIO(q, nvme.Command{Opcode: nvme.IOFlush, NSID: ns.ID}, nil, false)
	return err
}

// keepAlive sends a Keep Alive every KATO/2 until Close, on whichever
// association is current; it ends when one fails and there is no
// reconnecting, or reconnecting gave up.
func (c *Controller) keepAlive() {
	defer c.bg.Done()
	t := time.NewTicker(c.cfg.KATO / 2)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if _, err := c.Admin().Submit(nvme.Command{Opcode: nvme.AdminKeepAlive}, nil, false); err != nil && !c.reconnecting() {
				return
			}
		}
	}
}

// Close disconnects: the I/O queues close, the controller is shut down
// (CC.SHN = normal, then CSTS.SHST = complete, waited for at most CAP.TO),
// and the admin queue closes. A reconnection under way is abandoned.
// Every goroutine of the controller has returned when Close does.
func (c *Controller) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.stop)
		c.bg.Wait()
		a := c.current()
		for _, q := range a.io {
			q.close(errClosed)
		}
		if a.admin.Err() == nil && a.cntlID != 0 {
			err = a.shutdown()
		}
		a.admin.close(errClosed)
	})
	return err
}

func (a *assoc) shutdown() error {
	if err := a.propertySet(nvme.PropCC, uint64(nvme.CCValue(true, nvme.CCShnNormal))); err != nil {
		return err
	}
	for range 1000 {
		csts, err := a.propertyGet(nvme.PropCSTS, false)
		if err != nil {
			return err
		}
		if csts&(3<<nvme.CSTSShstShift) == nvme.CSTSShstDone {
			return nil
		}
		time.Sleep(ccPoll)
	}
	return errors.New("initiator: controller did not finish its shutdown")
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
