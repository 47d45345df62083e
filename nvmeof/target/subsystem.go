package target

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/zflowdev/zflow/nvmeof/nvme"
)

// Subsystem is one NVM subsystem a target serves: its NQN, its namespaces
// (NSID i+1 is Namespaces[i]) and the hosts that may connect to it.
type Subsystem struct {
	NQN        string
	Namespaces []Namespace
	// AllowHosts lists the host NQNs that may connect; empty allows any.
	AllowHosts []string
}

func (s *Subsystem) check() error {
	if len(s.NQN) == 0 || len(s.NQN) > nvme.MaxNQNLength {
		return fmt.Errorf("target: subsystem NQN %q: want 1 to %d bytes", s.NQN, nvme.MaxNQNLength)
	}
	if s.NQN == nvme.DiscoveryNQN {
		return fmt.Errorf("target: subsystem NQN %s is the discovery subsystem's", s.NQN)
	}
	if len(s.Namespaces) == 0 {
		return fmt.Errorf("target: subsystem %s has no namespace", s.NQN)
	}
	for i, ns := range s.Namespaces {
		if ns == nil || ns.Size()>>ns.BlockShift() == 0 {
			return fmt.Errorf("target: namespace %d of %s is empty", i+1, s.NQN)
		}
	}
	return nil
}

func (s *Subsystem) hostAllowed(nqn string) bool {
	return len(s.AllowHosts) == 0 || slices.Contains(s.AllowHosts, nqn)
}

// namespace is the namespace of nsid, nil when there is none.
func (s *Subsystem) namespace(nsid uint32) Namespace {
	if nsid == 0 || uint64(nsid) > uint64(len(s.Namespaces)) {
		return nil
	}
	return s.Namespaces[nsid-1]
}

// serial is the subsystem's serial number: the same for every controller
// of the subsystem, derived from its NQN.
func serial(nqn string) string {
	h := fnv.New64a()
	h.Write([]byte(nqn))
	const digits = "0123456789ABCDEF"
	v := h.Sum64()
	b := make([]byte, 16)
	for i := range b {
		b[i] = digits[v>>(60-4*i)&0xF]
	}
	return string(b)
}

// nguid is a namespace's globally unique id, stable across restarts: a
// hash of the subsystem NQN and the NSID.
func (s *Subsystem) nguid(nsid uint32) [16]byte {
	var g [16]byte
	h := fnv.New128a()
	h.Write([]byte(s.NQN))
	binary.Write(h, binary.LittleEndian, nsid)
	copy(g[:], h.Sum(nil))
	return g
}
