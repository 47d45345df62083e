//go:build linux && !(cgo && rdma_verbs)

package rdma

import "errors"

// HasVerbs says whether this binary links libibverbs (the rdma_verbs
// build tag, with cgo).
const HasVerbs = false

var errNoVerbs = errors.New("rdma: this binary has no verbs provider (built without libibverbs: go build -tags rdma_verbs with cgo)")

type verbsPD struct{}

type verbsQP struct{}

// NewVerbsPD fails: this binary has no verbs provider.
func NewVerbsPD(string) (*PD, error) { return nil, errNoVerbs }

// DeviceName is "" in a binary without verbs.
func (pd *PD) DeviceName() string { return "" }

func (pd *PD) regVerbs(*MR) error { return errNoVerbs }
func deregVerbs(*MR)              {}
func (pd *PD) closeVerbs()        {}

// NewVerbsQP fails: this binary has no verbs provider.
func NewVerbsQP(*PD, *CQ) (*QP, error) { return nil, errNoVerbs }

// Info is the zero QPInfo in a binary without verbs.
func (qp *QP) Info() QPInfo { return QPInfo{} }

// ConnectVerbs fails: this binary has no verbs provider.
func (qp *QP) ConnectVerbs(QPInfo) error { return errNoVerbs }

// SetRemoteBase does nothing in a binary without verbs.
func (qp *QP) SetRemoteBase(uint32, uint64) {}

func (qp *QP) postVerbs(...WR) error      { return errNoVerbs }
func (qp *QP) postRecvVerbs(uint64) error { return errNoVerbs }
func (qp *QP) closeVerbs()                {}

func (qp *QP) sendCapVerbs() int { return 0 }
func (qp *QP) wrsVerbs(int) int  { return 1 }
