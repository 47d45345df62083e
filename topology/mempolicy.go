package topology

import "errors"

// The parts of the memory-policy API that are the same on every OS; the
// system calls are in mempolicy_linux.go, and fail with
// errors.ErrUnsupported elsewhere (mempolicy_other.go).

// MbindFlags are the MPOL_MF_* flags of mbind(2), with the kernel's values
// (mempolicy_linux.go checks them against x/sys/unix at compile time).
type MbindFlags int

const (
	// MbindStrict (MPOL_MF_STRICT) makes mbind fail with EIO when pages
	// already present in the range are not on the node (and, with
	// MbindMove, could not be moved).
	MbindStrict MbindFlags = 1
	// MbindMove (MPOL_MF_MOVE) migrates pages already present in the range,
	// that only this process maps, to the node.
	MbindMove MbindFlags = 2
)

// ErrNodeUnavailable is wrapped (together with the errno) by Mbind when the
// kernel refused a node that does not exist or has no memory.
var ErrNodeUnavailable = errors.New("NUMA node not available")
