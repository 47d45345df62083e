package nvme

import "fmt"

// Status is the 16-bit status field of a completion as it sits in CQE bytes
// 14–15: bit 0 phase (0 on fabrics), bits 1–8 status code (SC), bits 9–11
// status code type (SCT), bits 12–13 command retry delay, bit 14 more, bit 15
// do not retry (DNR).
type Status uint16

// Status code types.
const (
	SCTGeneric       = 0
	SCTCommand       = 1
	SCTMedia         = 2
	SCTPath          = 3
	SCTVendor        = 7
	statusDNR        = 1 << 15
	statusMore       = 1 << 14
	statusSCShift    = 1
	statusSCTShift   = 9
	statusSCMask     = 0xFF
	statusSCTMask    = 0x7
	statusRetryShift = 12
)

// MakeStatus builds a status from its type, code and the do-not-retry bit.
func MakeStatus(sct, sc uint8, dnr bool) Status {
	s := Status(sc)<<statusSCShift | Status(sct&statusSCTMask)<<statusSCTShift
	if dnr {
		s |= statusDNR
	}
	return s
}

// Statuses a target returns (docs/nvme-tcp.md, 3.4 and 5.1).
const (
	StatusSuccess          Status = 0
	StatusInvalidOpcode    Status = 0x8002 // generic 0x01, DNR
	StatusInvalidField     Status = 0x8004 // generic 0x02, DNR
	StatusInternal         Status = 0x000C // generic 0x06
	StatusInvalidNamespace Status = 0x8016 // generic 0x0B, DNR
	StatusCommandSequence  Status = 0x8018 // generic 0x0C, DNR
	StatusSGLLengthInvalid Status = 0x801E // generic 0x0F, DNR
	StatusLBAOutOfRange    Status = 0x8100 // generic 0x80, DNR
	// StatusTransientTransport answers a command whose data arrived with a
	// bad data digest: the transport lost it, a retry may succeed.
	StatusTransientTransport Status = 0x0044 // generic 0x22
	StatusNamespaceNotReady  Status = 0x0104 // generic 0x82
	StatusInvalidQueueID     Status = 0x8202 // command specific 0x01, DNR
	StatusAERLimitExceeded   Status = 0x820A // command specific 0x05, DNR
	StatusInvalidLogPage     Status = 0x8212 // command specific 0x09, DNR
	StatusConnectIncompatFmt Status = 0x8300 // command specific 0x80, DNR
	StatusConnectBusy        Status = 0x8302 // command specific 0x81, DNR
	StatusConnectInvalidParm Status = 0x8304 // command specific 0x82, DNR
	StatusConnectInvalidHost Status = 0x8308 // command specific 0x84, DNR
	StatusMediaReadError     Status = 0x8502 // media 0x81, DNR
	StatusMediaWriteFault    Status = 0x8500 // media 0x80, DNR
)

// SC is the status code.
func (s Status) SC() uint8 { return uint8(s >> statusSCShift & statusSCMask) }

// SCT is the status code type.
func (s Status) SCT() uint8 { return uint8(s >> statusSCTShift & statusSCTMask) }

// DNR reports the do-not-retry bit.
func (s Status) DNR() bool { return s&statusDNR != 0 }

// OK reports whether the status is a success (phase bit ignored).
func (s Status) OK() bool { return s>>1&(statusSCMask|statusSCTMask<<8) == 0 }

// Code is the status with phase, retry delay, more and DNR cleared: what to
// compare against when the retry bits do not matter.
func (s Status) Code() Status {
	return s & (statusSCMask<<statusSCShift | statusSCTMask<<statusSCTShift)
}

func (s Status) String() string {
	name := ""
	switch s.Code() {
	case StatusSuccess:
		name = "success"
	case StatusInvalidOpcode.Code():
		name = "invalid opcode"
	case StatusInvalidField.Code():
		name = "invalid field"
	case StatusInternal.Code():
		name = "internal error"
	case StatusInvalidNamespace.Code():
		name = "invalid namespace"
	case StatusCommandSequence.Code():
		name = "command sequence error"
	case StatusSGLLengthInvalid.Code():
		name = "data SGL length invalid"
	case StatusLBAOutOfRange.Code():
		name = "LBA out of range"
	case StatusTransientTransport.Code():
		name = "transient transport error"
	case StatusNamespaceNotReady.Code():
		name = "namespace not ready"
	case StatusInvalidQueueID.Code():
		name = "invalid queue identifier"
	case StatusAERLimitExceeded.Code():
		name = "asynchronous event request limit exceeded"
	case StatusInvalidLogPage.Code():
		name = "invalid log page"
	case StatusConnectIncompatFmt.Code():
		name = "connect: incompatible format"
	case StatusConnectBusy.Code():
		name = "connect: controller busy"
	case StatusConnectInvalidParm.Code():
		name = "connect: invalid parameters"
	case StatusConnectInvalidHost.Code():
		name = "connect: host not allowed"
	case StatusMediaReadError.Code():
		name = "unrecovered read error"
	case StatusMediaWriteFault.Code():
		name = "write fault"
	}
	dnr := ""
	if s.DNR() {
		dnr = ", DNR"
	}
	if name == "" {
		return fmt.Sprintf("status SCT %d SC %#02x%s", s.SCT(), s.SC(), dnr)
	}
	return fmt.Sprintf("%s (SCT %d SC %#02x%s)", name, s.SCT(), s.SC(), dnr)
}

// StatusError is a completion that did not succeed, returned as an error by
// an initiator.
type StatusError struct {
	Op     string // what was asked, e.g. "identify controller"
	Status Status
	DW0    uint32
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("nvme: %s: %s", e.Op, e.Status)
}
