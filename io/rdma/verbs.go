//go:build linux

package rdma

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

// Access is what a memory region allows (IBV_ACCESS_*).
type Access uint8

// The access flags. Local reads are always allowed: a region is the
// source of a WRITE by being registered at all.
const (
	LocalWrite  Access = 1 << iota // the region may be the target of a local READ's placement
	RemoteWrite                    // a peer may WRITE into it
	RemoteRead                     // a peer may READ from it
)

// Errors a caller can test for; the messages add the place and the reason.
var (
	ErrDeregistered = errors.New("rdma: memory region deregistered")
	ErrProtection   = errors.New("rdma: protection error")
	ErrQPState      = errors.New("rdma: queue pair in error state")
)

// PD is a protection domain: the memory regions registered in it and the
// keys that name them. A queue pair reaches only regions of its own PD:
// local buffers by lkey, the peer's by the rkey the peer handed out.
type PD struct {
	v       *verbsPD // the device's PD, for real verbs; nil for the emulation
	mu      sync.RWMutex
	byKey   map[uint32]*MR // lkey == rkey here; real providers differ, the API does not rely on it
	nextKey uint32
	closed  bool
}

// NewPD returns an empty protection domain.
func NewPD() *PD { return &PD{byKey: map[uint32]*MR{}, nextKey: 0x1000} }

// MR is a registered memory region. Its bytes are the caller's (Register)
// or the region's own shareable mapping (AllocShared); addresses a peer
// uses are offsets in it (zero-based, IBV_ACCESS_ZERO_BASED).
type MR struct {
	pd      *PD
	mem     []byte
	LKey    uint32
	RKey    uint32
	access  Access
	shared  *sharedMem     // non-nil for AllocShared: a memfd a peer on the host may map
	onDereg func()         // run once the region is deregistered (the owner's unmapping)
	vmr     unsafe.Pointer // the device\'s registration (struct ibv_mr), real verbs only

	// use is held for reading while a peer's request places or reads
	// bytes; Deregister takes it for writing, so that once it returns no
	// request touches the region.
	use  sync.RWMutex
	dead bool
}

// Bytes is the region's memory.
func (mr *MR) Bytes() []byte { return mr.mem }

// Len is the region's size.
func (mr *MR) Len() int { return len(mr.mem) }

// Register registers mem (memory the caller owns and keeps mapped until
// Deregister) in the PD.
func (pd *PD) Register(mem []byte, access Access) (*MR, error) {
	if len(mem) == 0 {
		return nil, fmt.Errorf("rdma: register: an empty region")
	}
	return pd.add(&MR{mem: mem, access: access})
}

// AllocShared maps a region of size bytes that a peer on the same host
// can map too (a memfd, hugepage-backed where the kernel has them) and
// registers it: the emulated provider's one-sided access within a host.
func (pd *PD) AllocShared(size int, access Access) (*MR, error) {
	sm, err := newSharedMem(size)
	if err != nil {
		return nil, err
	}
	mr, err := pd.add(&MR{mem: sm.mem, access: access, shared: sm})
	if err != nil {
		sm.close()
		return nil, err
	}
	return mr, nil
}

func (pd *PD) add(mr *MR) (*MR, error) {
	pd.mu.Lock()
	defer pd.mu.Unlock()
	if pd.closed {
		return nil, fmt.Errorf("rdma: register: the protection domain is closed")
	}
	mr.pd = pd
	if pd.v != nil {
		if err := pd.regVerbs(mr); err != nil {
			return nil, err
		}
	} else {
		pd.nextKey++
		mr.LKey, mr.RKey = pd.nextKey, pd.nextKey
	}
	pd.byKey[mr.LKey] = mr
	return mr, nil
}

// Deregister revokes the region's keys: it waits for a peer's request
// that is placing or reading bytes in it, after which no request reaches
// it (a later one fails with a remote access error), and unmaps the
// region's own memory. Deregistering twice is a no-op.
func (mr *MR) Deregister() error {
	mr.use.Lock()
	if mr.dead {
		mr.use.Unlock()
		return nil
	}
	mr.dead = true
	mr.use.Unlock()
	mr.pd.mu.Lock()
	delete(mr.pd.byKey, mr.LKey)
	mr.pd.mu.Unlock()
	deregVerbs(mr)
	if mr.onDereg != nil {
		mr.onDereg()
	}
	if mr.shared != nil {
		return mr.shared.close()
	}
	return nil
}

// Registered is the number of regions registered in the PD.
func (pd *PD) Registered() int {
	pd.mu.RLock()
	defer pd.mu.RUnlock()
	return len(pd.byKey)
}

// Close deregisters every region left and closes the PD.
func (pd *PD) Close() error {
	pd.mu.Lock()
	pd.closed = true
	left := make([]*MR, 0, len(pd.byKey))
	for _, mr := range pd.byKey {
		left = append(left, mr)
	}
	pd.mu.Unlock()
	var errs []error
	for _, mr := range left {
		errs = append(errs, mr.Deregister())
	}
	pd.closeVerbs()
	return errors.Join(errs...)
}

// remote finds the region a peer names by rkey and checks the access and
// the range; on success the region is held (use.RLock) until done is
// called.
func (pd *PD) remote(rkey uint32, off, n uint64, want Access) (b []byte, done func(), err error) {
	pd.mu.RLock()
	mr := pd.byKey[rkey]
	pd.mu.RUnlock()
	if mr == nil {
		return nil, nil, fmt.Errorf("%w: rkey %#x names no region (never registered, or deregistered)", ErrProtection, rkey)
	}
	mr.use.RLock()
	switch {
	case mr.dead:
		mr.use.RUnlock()
		return nil, nil, fmt.Errorf("%w: rkey %#x: %w", ErrProtection, rkey, ErrDeregistered)
	case mr.access&want == 0:
		mr.use.RUnlock()
		return nil, nil, fmt.Errorf("%w: rkey %#x does not allow %s", ErrProtection, rkey, accessName(want))
	case off > uint64(len(mr.mem)) || n > uint64(len(mr.mem))-off:
		mr.use.RUnlock()
		return nil, nil, fmt.Errorf("%w: rkey %#x: %d bytes at offset %d are outside its %d bytes", ErrProtection, rkey, n, off, len(mr.mem))
	}
	return mr.mem[off : off+n], mr.use.RUnlock, nil
}

// local checks that buf lies in the region named by lkey (an SGE's
// check) and that the region is alive.
func (pd *PD) local(lkey uint32, buf []byte, want Access) error {
	pd.mu.RLock()
	mr := pd.byKey[lkey]
	pd.mu.RUnlock()
	if mr == nil {
		return fmt.Errorf("%w: lkey %#x names no region", ErrProtection, lkey)
	}
	if want != 0 && mr.access&want == 0 {
		return fmt.Errorf("%w: lkey %#x does not allow %s", ErrProtection, lkey, accessName(want))
	}
	if len(buf) > 0 && !within(mr.mem, buf) {
		return fmt.Errorf("%w: a %d-byte buffer is not inside the region of lkey %#x", ErrProtection, len(buf), lkey)
	}
	return nil
}

// within reports whether b lies inside mem.
func within(mem, b []byte) bool {
	if len(mem) == 0 {
		return false
	}
	m0 := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	b0 := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return b0 >= m0 && b0+uintptr(len(b)) <= m0+uintptr(len(mem))
}

func accessName(a Access) string {
	switch a {
	case LocalWrite:
		return "local write"
	case RemoteWrite:
		return "remote write"
	case RemoteRead:
		return "remote read"
	}
	return fmt.Sprintf("access %#x", uint8(a))
}

// QPInfo is what the peer needs to connect a verbs QP to this one.
type QPInfo struct {
	QPN, PSN uint32
	LID      uint16
	GID      [16]byte
}

// SGE is one piece of a work request's local memory: a buffer inside the
// region named by LKey.
type SGE struct {
	Buf  []byte
	LKey uint32
}

// Remote is where a one-sided request lands in the peer: an offset in
// the region named by RKey.
type Remote struct {
	RKey   uint32
	Offset uint64
}

// Op is a work request's or a completion's kind.
type Op uint8

// The operations.
const (
	OpWrite    Op = 1 // RDMA WRITE
	OpWriteImm Op = 2 // RDMA WRITE_WITH_IMM: a WRITE that also consumes a posted receive at the peer
	OpRead     Op = 3 // RDMA READ
	OpRecv     Op = 4 // a receive completion (a peer's WRITE_WITH_IMM arrived)
)

var opNames = [...]string{"", "write", "write_imm", "read", "recv"}

func (o Op) String() string {
	if int(o) < len(opNames) && o != 0 {
		return opNames[o]
	}
	return fmt.Sprintf("op %d", uint8(o))
}

// Status is a completion's outcome (IBV_WC_*).
type Status uint8

// The statuses.
const (
	Success      Status = iota
	LocalProtErr        // an SGE outside its region, or a dead lkey
	RemAccessErr        // the peer refused: unknown or revoked rkey, access not allowed, out of bounds
	RemInvReqErr        // the peer could not take it: no receive posted for an immediate
	WRFlushErr          // the QP went to the error state before this request completed
	TransportErr        // the connection to the peer ended or failed
)

var statusNames = [...]string{"success", "local protection error", "remote access error", "remote invalid request", "flushed", "transport error"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status %d", uint8(s))
}

// Completion is one entry of a completion queue.
type Completion struct {
	WRID   uint64
	Op     Op
	Status Status
	Imm    uint32 // OpRecv: the peer's immediate
	Bytes  int    // OpRecv: the length of the WRITE that carried it; OpRead: bytes read
	Err    error  // the reason, for a status other than Success
}
