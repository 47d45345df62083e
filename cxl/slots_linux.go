package cxl

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/internal/atomicfile"
)

// A participant slot (SlotBytes, little-endian):
//
//	off size field
//	  0    4 state: 0 free, 1 live (stored last when attaching, first
//	         when detaching)
//	  4    4 role
//	  8    4 pid
//	 12    4 boot id (first 32 bits)
//	 16    8 process start time, clock ticks after boot
//	 24    8 incarnation: random, new at each attach
//	 32    8 attached, Unix nanoseconds
//	 40    8 heartbeat, CLOCK_MONOTONIC nanoseconds
//	 48   32 name, NUL-padded
//	 80   48 zero
//
// Whoever holds the fcntl OFD lock on byte lockSlot0+i owns slot i: the
// kernel drops the lock when its holder dies (SIGKILL included), so a slot
// whose state is live but whose lock nobody holds belongs to a dead
// process, and whoever takes the lock next reclaims it. The pid and start
// time are only shown (zflow shm inspect): liveness never rests on a pid
// that may have been recycled.
const (
	slotState       = 0
	slotRole        = 4
	slotPID         = 8
	slotBoot        = 12
	slotStart       = 16
	slotIncarnation = 24
	slotAttached    = 32
	slotHeartbeat   = 40
	slotName        = 48
	slotNameBytes   = 32
)

const (
	stateFree = 0
	stateLive = 1
)

// Role says what a participant does.
type Role uint32

const (
	RoleProducer Role = iota + 1
	RoleConsumer
	RoleTool // zflow shm inspect/gc, tests
)

func (r Role) String() string {
	switch r {
	case RoleProducer:
		return "producer"
	case RoleConsumer:
		return "consumer"
	case RoleTool:
		return "tool"
	}
	return fmt.Sprintf("Role(%d)", uint32(r))
}

// ErrFull is returned by Attach when every participant slot is held by a
// live process.
var ErrFull = errors.New("every participant slot is held by a live process")

// Participant is one slot this process holds in a segment.
type Participant struct {
	seg  *Segment
	slot int
}

// Slot is the participant's slot index.
func (p *Participant) Slot() int { return p.slot }

// Segment is the segment the participant is attached to.
func (p *Participant) Segment() *Segment { return p.seg }

// ParticipantInfo is what a slot says about its holder.
type ParticipantInfo struct {
	Slot        int       `json:"slot"`
	Role        string    `json:"role"`
	Name        string    `json:"name"`
	PID         int       `json:"pid"`
	Start       uint64    `json:"start_ticks"`
	Incarnation uint64    `json:"incarnation"`
	Attached    time.Time `json:"attached"`
	// Alive: some process holds the slot's lock (this one included).
	Alive bool `json:"alive"`
}

func (s *Segment) slotOff(i int) int64 { return s.hdr.Slots.Off + int64(i)*int64(s.hdr.Slots.Bytes) }

// Attach takes a free participant slot (or one a dead process left, which
// it reclaims first) for this process.
func (s *Segment) Attach(role Role, name string) (*Participant, error) {
	me, _ := atomicfile.Self()
	var inc [8]byte
	rand.Read(inc[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("cxl: segment %s: attach after Close", s.name)
	}
	for i := 0; i < s.hdr.Slots.Count; i++ {
		if s.held[i] {
			continue // ours: re-locking from the same description succeeds
		}
		got, err := tryLock(s.fd, lockSlot0+int64(i))
		if err != nil {
			return nil, fmt.Errorf("cxl: segment %s: lock slot %d: %w", s.name, i, err)
		}
		if !got {
			continue
		}
		off := s.slotOff(i)
		if s.u32(off+slotState).Load() != stateFree {
			s.reclaimLocked(i)
		}
		b := s.mem[off : off+int64(s.hdr.Slots.Bytes)]
		clear(b[4:])
		le := binary.LittleEndian
		le.PutUint32(b[slotRole:], uint32(role))
		le.PutUint32(b[slotPID:], uint32(me.PID))
		le.PutUint32(b[slotBoot:], me.Boot)
		le.PutUint64(b[slotStart:], me.Start)
		copy(b[slotIncarnation:], inc[:])
		le.PutUint64(b[slotAttached:], uint64(time.Now().UnixNano()))
		copy(b[slotName:slotName+slotNameBytes], name)
		s.u64(off + slotHeartbeat).Store(monotonicNow())
		s.u32(off + slotState).Store(stateLive)
		s.held[i] = true
		return &Participant{seg: s, slot: i}, nil
	}
	return nil, fmt.Errorf("cxl: segment %s: attach as %s: %w (%d slots)", s.name, role, ErrFull, s.hdr.Slots.Count)
}

// Detach frees the participant's slot.
func (p *Participant) Detach() {
	p.seg.mu.Lock()
	defer p.seg.mu.Unlock()
	if p.seg.held[p.slot] && !p.seg.closed {
		p.seg.freeSlotLocked(p.slot)
	}
}

// Beat records that the participant is making progress (for telling a
// hung process from a slow one; death itself is seen through the lock).
func (p *Participant) Beat() {
	p.seg.u64(p.seg.slotOff(p.slot) + slotHeartbeat).Store(monotonicNow())
}

func (s *Segment) freeSlot(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[i] {
		s.freeSlotLocked(i)
	}
}

func (s *Segment) freeSlotLocked(i int) {
	s.forgetSlot(i) // the slot number goes to the next to attach
	s.u32(s.slotOff(i) + slotState).Store(stateFree)
	delete(s.held, i)
	unlock(s.fd, lockSlot0+int64(i))
}

// reclaimLocked clears slot i, whose lock s holds and whose holder died:
// its places in channels are freed for a successor, and its extents are
// freed — or, while a channel has batches some consumer has not acked
// (they may be the dead producer's), retired, to be freed by a later
// sweep once every channel is drained.
func (s *Segment) reclaimLocked(i int) {
	s.forgetSlot(i)
	if s.anyUnacked() {
		s.retireSlotExtents(i)
	} else {
		s.releaseSlotExtents(i)
	}
	off := s.slotOff(i)
	s.u32(off + slotState).Store(stateFree)
	clear(s.mem[off+4 : off+int64(s.hdr.Slots.Bytes)])
}

// Participants lists the slots in use, alive or left by a dead process.
func (s *Segment) Participants() ([]ParticipantInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ParticipantInfo
	for i := 0; i < s.hdr.Slots.Count; i++ {
		off := s.slotOff(i)
		if s.u32(off+slotState).Load() == stateFree {
			continue
		}
		info := s.slotInfo(i)
		info.Alive = s.held[i]
		if !info.Alive {
			other, err := lockedByOther(s.fd, lockSlot0+int64(i))
			if err != nil {
				return nil, fmt.Errorf("cxl: segment %s: slot %d: %w", s.name, i, err)
			}
			info.Alive = other
		}
		out = append(out, info)
	}
	return out, nil
}

func (s *Segment) slotInfo(i int) ParticipantInfo {
	off := s.slotOff(i)
	b := s.mem[off : off+int64(s.hdr.Slots.Bytes)]
	le := binary.LittleEndian
	name := b[slotName : slotName+slotNameBytes]
	if k := bytes.IndexByte(name, 0); k >= 0 {
		name = name[:k]
	}
	return ParticipantInfo{
		Slot:        i,
		Role:        Role(le.Uint32(b[slotRole:])).String(),
		Name:        string(name),
		PID:         int(le.Uint32(b[slotPID:])),
		Start:       le.Uint64(b[slotStart:]),
		Incarnation: le.Uint64(b[slotIncarnation:]),
		Attached:    time.Unix(0, int64(le.Uint64(b[slotAttached:]))),
	}
}

// Reclaim frees the slots dead processes left and returns what they said.
func (s *Segment) Reclaim() ([]ParticipantInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ParticipantInfo
	for i := 0; i < s.hdr.Slots.Count; i++ {
		off := s.slotOff(i)
		if s.held[i] || s.u32(off+slotState).Load() == stateFree {
			continue
		}
		got, err := tryLock(s.fd, lockSlot0+int64(i))
		if err != nil {
			return out, fmt.Errorf("cxl: segment %s: lock slot %d: %w", s.name, i, err)
		}
		if !got {
			continue // alive
		}
		if s.u32(off+slotState).Load() != stateFree {
			out = append(out, s.slotInfo(i))
			s.reclaimLocked(i)
		}
		unlock(s.fd, lockSlot0+int64(i))
	}
	s.sweep()
	return out, nil
}

func monotonicNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
