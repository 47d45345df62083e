//go:build linux && cgo && rdma_verbs

package rdma

/*
#cgo LDFLAGS: -libverbs
#include <infiniband/verbs.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

// zf_fill fills one work request of a list (next links the following).
static void zf_fill(struct ibv_send_wr *wr, struct ibv_send_wr *next, uint64_t id, struct ibv_sge *sg, int n,
		uint64_t raddr, uint32_t rkey, int op, uint32_t imm, int signaled) {
	memset(wr, 0, sizeof *wr);
	wr->wr_id = id;
	wr->next = next;
	wr->sg_list = sg;
	wr->num_sge = n;
	wr->opcode = op == 1 ? IBV_WR_RDMA_WRITE : op == 2 ? IBV_WR_RDMA_WRITE_WITH_IMM : IBV_WR_RDMA_READ;
	wr->send_flags = signaled ? IBV_SEND_SIGNALED : 0;
	wr->imm_data = htonl(imm);
	wr->wr.rdma.remote_addr = raddr;
	wr->wr.rdma.rkey = rkey;
}

static int zf_post_list(struct ibv_qp *qp, struct ibv_send_wr *first) {
	struct ibv_send_wr *bad = NULL;
	return ibv_post_send(qp, first, &bad);
}

static int zf_post_recv(struct ibv_qp *qp, uint64_t id) {
	struct ibv_recv_wr wr, *bad = NULL;
	memset(&wr, 0, sizeof wr);
	wr.wr_id = id;
	return ibv_post_recv(qp, &wr, &bad);
}

static int zf_to_init(struct ibv_qp *qp, int port) {
	struct ibv_qp_attr a;
	memset(&a, 0, sizeof a);
	a.qp_state = IBV_QPS_INIT;
	a.port_num = port;
	a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_LOCAL_WRITE;
	return ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
}

static int zf_to_rtr(struct ibv_qp *qp, int port, uint32_t dqpn, uint32_t rpsn, uint16_t dlid,
		const uint8_t *gid, int gid_index, int mtu) {
	struct ibv_qp_attr a;
	memset(&a, 0, sizeof a);
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = mtu;
	a.dest_qp_num = dqpn;
	a.rq_psn = rpsn;
	a.max_dest_rd_atomic = 16;
	a.min_rnr_timer = 12;
	a.ah_attr.dlid = dlid;
	a.ah_attr.port_num = port;
	a.ah_attr.is_global = 1;
	memcpy(a.ah_attr.grh.dgid.raw, gid, 16);
	a.ah_attr.grh.sgid_index = gid_index;
	a.ah_attr.grh.hop_limit = 64;
	return ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
		IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
}

static int zf_to_rts(struct ibv_qp *qp, uint32_t psn) {
	struct ibv_qp_attr a;
	memset(&a, 0, sizeof a);
	a.qp_state = IBV_QPS_RTS;
	a.sq_psn = psn;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 16;
	return ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
		IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

// zf_wait waits up to ms for the channel's next event and acknowledges
// it: 1 an event, 0 the time passed, -1 an error.
static int zf_wait(struct ibv_comp_channel *ch, int ms) {
	struct pollfd p = {.fd = ch->fd, .events = POLLIN};
	int n = poll(&p, 1, ms);
	if (n <= 0) return n < 0 && errno != EINTR ? -1 : 0;
	struct ibv_cq *cq; void *ctx;
	if (ibv_get_cq_event(ch, &cq, &ctx)) return -1;
	ibv_ack_cq_events(cq, 1);
	return 1;
}

static int zf_query_port(struct ibv_context *ctx, int port, struct ibv_port_attr *pa) {
	return ibv_query_port(ctx, port, pa);
}

static uint32_t zf_imm(struct ibv_wc *wc) { return ntohl(wc->imm_data); }
*/
import "C"

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// HasVerbs says whether this binary links libibverbs (the rdma_verbs
// build tag).
const HasVerbs = true

// verbsDev is an opened verbs device and the port, GID and MTU used.
type verbsDev struct {
	ctx      *C.struct_ibv_context
	name     string
	port     int
	gidIndex int
	gid      [16]byte
	lid      uint16
	mtu      int
	maxSGE   int
	maxQPWR  int
}

// openVerbs opens the device named name (the first one for "").
func openVerbs(name string) (*verbsDev, error) {
	var n C.int
	list, err := C.ibv_get_device_list(&n)
	if list == nil {
		return nil, fmt.Errorf("rdma: ibv_get_device_list: %w", err)
	}
	defer C.ibv_free_device_list(list)
	devs := unsafe.Slice(list, int(n))
	var names []string
	for _, d := range devs {
		dn := C.GoString(C.ibv_get_device_name(d))
		names = append(names, dn)
		if name != "" && dn != name {
			continue
		}
		ctx, err := C.ibv_open_device(d)
		if ctx == nil {
			return nil, fmt.Errorf("rdma: open %s: %w", dn, err)
		}
		v := &verbsDev{ctx: ctx, name: dn, port: 1}
		if err := v.query(); err != nil {
			C.ibv_close_device(ctx)
			return nil, err
		}
		return v, nil
	}
	if name == "" {
		return nil, errors.New("rdma: no verbs device (libibverbs lists none)")
	}
	return nil, fmt.Errorf("rdma: no verbs device %q (libibverbs lists %s)", name, strings.Join(names, ", "))
}

// query reads the port's state and MTU and picks a GID: the first that
// holds an IPv4 address (RoCE v2 over IPv4), else index 0.
func (v *verbsDev) query() error {
	var pa C.struct_ibv_port_attr
	if rc := C.zf_query_port(v.ctx, C.int(v.port), &pa); rc != 0 {
		return fmt.Errorf("rdma: %s: query port %d: %w", v.name, v.port, syscall.Errno(rc))
	}
	if pa.state != C.IBV_PORT_ACTIVE {
		return fmt.Errorf("rdma: %s: port %d is not active (state %d)", v.name, v.port, int(pa.state))
	}
	v.lid, v.mtu = uint16(pa.lid), int(pa.active_mtu)
	var da C.struct_ibv_device_attr
	if rc := C.ibv_query_device(v.ctx, &da); rc != 0 {
		return fmt.Errorf("rdma: %s: query device: %w", v.name, syscall.Errno(rc))
	}
	v.maxSGE = min(int(da.max_sge), 30)
	v.maxQPWR = int(da.max_qp_wr)
	found := false
	for i := 0; i < int(pa.gid_tbl_len) && i < 16; i++ {
		var g C.union_ibv_gid
		if C.ibv_query_gid(v.ctx, C.uint8_t(v.port), C.int(i), &g) != 0 {
			continue
		}
		raw := *(*[16]byte)(unsafe.Pointer(&g))
		if raw == ([16]byte{}) {
			continue
		}
		if !found {
			v.gid, v.gidIndex, found = raw, i, true
		}
		if isV4Mapped(raw) && gidType(v.name, v.port, i) != "IB/RoCE v1" {
			v.gid, v.gidIndex = raw, i
			break
		}
	}
	if !found {
		return fmt.Errorf("rdma: %s: port %d has no GID (is the network interface under it up with an address?)", v.name, v.port)
	}
	return nil
}

// gidType is the kernel's type of a GID entry ("RoCE v2", "IB/RoCE v1"),
// "" when it does not say.
func gidType(dev string, port, index int) string {
	b, err := os.ReadFile(fmt.Sprintf("/sys/class/infiniband/%s/ports/%d/gid_attrs/types/%d", dev, port, index))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func isV4Mapped(g [16]byte) bool {
	for _, b := range g[:10] {
		if b != 0 {
			return false
		}
	}
	return g[10] == 0xff && g[11] == 0xff
}

func (v *verbsDev) close() { C.ibv_close_device(v.ctx) }

// verbsPD is a PD's device side.
type verbsPD struct {
	dev *verbsDev
	pd  *C.struct_ibv_pd
}

// NewVerbsPD opens device name ("" for the first) and allocates a
// protection domain on it.
func NewVerbsPD(name string) (*PD, error) {
	dev, err := openVerbs(name)
	if err != nil {
		return nil, err
	}
	pd := C.ibv_alloc_pd(dev.ctx)
	if pd == nil {
		dev.close()
		return nil, fmt.Errorf("rdma: %s: allocate a protection domain failed", dev.name)
	}
	p := NewPD()
	p.v = &verbsPD{dev: dev, pd: pd}
	return p, nil
}

// DeviceName is the verbs device of the PD, or "" for the emulation.
func (pd *PD) DeviceName() string {
	if pd.v == nil {
		return ""
	}
	return pd.v.dev.name
}

// regVerbs registers mr's memory with the device.
func (pd *PD) regVerbs(mr *MR) error {
	access := C.int(C.IBV_ACCESS_LOCAL_WRITE)
	if mr.access&RemoteWrite != 0 {
		access |= C.IBV_ACCESS_REMOTE_WRITE
	}
	if mr.access&RemoteRead != 0 {
		access |= C.IBV_ACCESS_REMOTE_READ
	}
	m, err := C.ibv_reg_mr(pd.v.pd, unsafe.Pointer(unsafe.SliceData(mr.mem)), C.size_t(len(mr.mem)), access)
	if m == nil {
		return fmt.Errorf("rdma: %s: register %d bytes: %w (is RLIMIT_MEMLOCK large enough?)", pd.v.dev.name, len(mr.mem), err)
	}
	mr.vmr = unsafe.Pointer(m)
	mr.LKey, mr.RKey = uint32(m.lkey), uint32(m.rkey)
	return nil
}

func deregVerbs(mr *MR) {
	if mr.vmr != nil {
		C.ibv_dereg_mr((*C.struct_ibv_mr)(mr.vmr))
		mr.vmr = nil
	}
}

func (pd *PD) closeVerbs() {
	if pd.v != nil {
		C.ibv_dealloc_pd(pd.v.pd)
		pd.v.dev.close()
		pd.v = nil
	}
}

type verbsQP struct {
	sendCap int // send-queue entries
	dev     *verbsDev
	ch      *C.struct_ibv_comp_channel
	cq      *C.struct_ibv_cq
	qp      *C.struct_ibv_qp
	info    QPInfo
	stop    chan struct{}
	wg      sync.WaitGroup
	bases   map[uint32]uint64 // rkey → the peer region's address
	mu      sync.Mutex
}

// NewVerbsQP makes an RC queue pair on pd's device whose completions go
// to cq, in the INIT state; ConnectVerbs takes it to RTS.
func NewVerbsQP(pd *PD, cq *CQ) (*QP, error) {
	if pd.v == nil {
		return nil, errors.New("rdma: a verbs QP needs a verbs PD")
	}
	dev := pd.v.dev
	v := &verbsQP{dev: dev, stop: make(chan struct{}), bases: map[uint32]uint64{}}
	if v.ch = C.ibv_create_comp_channel(dev.ctx); v.ch == nil {
		return nil, fmt.Errorf("rdma: %s: create a completion channel failed", dev.name)
	}
	if v.cq = C.ibv_create_cq(dev.ctx, 8192, nil, v.ch, 0); v.cq == nil {
		C.ibv_destroy_comp_channel(v.ch)
		return nil, fmt.Errorf("rdma: %s: create a completion queue failed", dev.name)
	}
	var ia C.struct_ibv_qp_init_attr
	ia.send_cq, ia.recv_cq, ia.qp_type = v.cq, v.cq, C.IBV_QPT_RC
	v.sendCap = min(int(dev.maxQPWR), 8192)
	ia.cap.max_send_wr, ia.cap.max_recv_wr = C.uint32_t(v.sendCap), maxRecvs
	ia.cap.max_send_sge, ia.cap.max_recv_sge = C.uint32_t(dev.maxSGE), 1
	if v.qp = C.ibv_create_qp(pd.v.pd, &ia); v.qp == nil {
		v.destroy()
		return nil, fmt.Errorf("rdma: %s: create a queue pair failed", dev.name)
	}
	if rc := C.zf_to_init(v.qp, C.int(dev.port)); rc != 0 {
		v.destroy()
		return nil, fmt.Errorf("rdma: %s: queue pair to INIT: %w", dev.name, syscall.Errno(rc))
	}
	v.info = QPInfo{QPN: uint32(v.qp.qp_num), PSN: rand.Uint32() & 0xffffff, LID: dev.lid, GID: dev.gid}
	if rc := C.ibv_req_notify_cq(v.cq, 0); rc != 0 {
		v.destroy()
		return nil, fmt.Errorf("rdma: %s: arm the completion queue: %w", dev.name, syscall.Errno(rc))
	}
	qp := &QP{pd: pd, cq: cq, v: v, stop: make(chan struct{})}
	v.wg.Add(1)
	go qp.pollVerbs()
	return qp, nil
}

// Info is what the peer needs to connect to this QP (verbs only).
func (qp *QP) Info() QPInfo { return qp.v.info }

// ConnectVerbs takes the QP to RTR and RTS towards the peer's QP.
func (qp *QP) ConnectVerbs(peer QPInfo) error {
	v := qp.v
	gid := peer.GID
	if rc := C.zf_to_rtr(v.qp, C.int(v.dev.port), C.uint32_t(peer.QPN), C.uint32_t(peer.PSN), C.uint16_t(peer.LID),
		(*C.uint8_t)(unsafe.Pointer(&gid[0])), C.int(v.dev.gidIndex), C.int(v.dev.mtu)); rc != 0 {
		return fmt.Errorf("rdma: %s: queue pair to RTR: %w", v.dev.name, syscall.Errno(rc))
	}
	if rc := C.zf_to_rts(v.qp, C.uint32_t(v.info.PSN)); rc != 0 {
		return fmt.Errorf("rdma: %s: queue pair to RTS: %w", v.dev.name, syscall.Errno(rc))
	}
	return nil
}

// SetRemoteBase sets the address of the peer's region named by rkey:
// verbs requests carry addresses, not offsets.
func (qp *QP) SetRemoteBase(rkey uint32, base uint64) {
	if qp.v == nil {
		return
	}
	qp.v.mu.Lock()
	qp.v.bases[rkey] = base
	qp.v.mu.Unlock()
}

// postVerbs posts wrs on the device as one list (one ibv_post_send),
// each cut into requests of at most the device's gather-list length (the
// immediate and the completion on the last piece).
func (qp *QP) postVerbs(wrs ...WR) error {
	v := qp.v
	if err := qp.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrQPState, err)
	}
	type piece struct {
		id, raddr uint64
		rkey, imm uint32
		op        C.int
		signaled  bool
		sge0, n   int
	}
	var pieces []piece
	var sges []C.struct_ibv_sge
	v.mu.Lock()
	for _, wr := range wrs {
		raddr := v.bases[wr.Remote.RKey] + wr.Remote.Offset
		op := C.int(1)
		switch wr.Op {
		case OpWriteImm:
			op = 2
		case OpRead:
			op = 3
		}
		sgl := wr.SGL
		for first := true; first || len(sgl) > 0; first = false {
			n := min(len(sgl), v.dev.maxSGE)
			p := piece{id: wr.ID, raddr: raddr, rkey: wr.Remote.RKey, imm: wr.Imm, op: op, signaled: wr.Signaled, sge0: len(sges), n: n}
			for _, s := range sgl[:n] {
				sges = append(sges, C.struct_ibv_sge{addr: C.uint64_t(uintptr(unsafe.Pointer(unsafe.SliceData(s.Buf)))), length: C.uint32_t(len(s.Buf)), lkey: C.uint32_t(s.LKey)})
				raddr += uint64(len(s.Buf))
			}
			if n < len(sgl) {
				p.op, p.signaled = 1, false
			}
			pieces = append(pieces, p)
			sgl = sgl[n:]
		}
	}
	v.mu.Unlock()
	// The list and its gather entries in C memory: ibv_post_send reads
	// them, and cgo does not let C keep Go pointers.
	csges := (*[1 << 20]C.struct_ibv_sge)(C.malloc(C.size_t(unsafe.Sizeof(C.struct_ibv_sge{})) * C.size_t(max(1, len(sges)))))
	defer C.free(unsafe.Pointer(csges))
	copy(csges[:len(sges)], sges)
	cwrs := (*[1 << 16]C.struct_ibv_send_wr)(C.malloc(C.size_t(unsafe.Sizeof(C.struct_ibv_send_wr{})) * C.size_t(len(pieces))))
	defer C.free(unsafe.Pointer(cwrs))
	for k, p := range pieces {
		var next *C.struct_ibv_send_wr
		if k+1 < len(pieces) {
			next = &cwrs[k+1]
		}
		var sg *C.struct_ibv_sge
		if p.n > 0 {
			sg = &csges[p.sge0]
		}
		C.zf_fill(&cwrs[k], next, C.uint64_t(p.id), sg, C.int(p.n), C.uint64_t(p.raddr), C.uint32_t(p.rkey), p.op, C.uint32_t(p.imm), boolInt(p.signaled))
	}
	if rc := C.zf_post_list(v.qp, &cwrs[0]); rc != 0 {
		err := fmt.Errorf("rdma: %s: post %d work requests: %w", v.dev.name, len(pieces), syscall.Errno(rc))
		qp.setErr(err)
		return err
	}
	return nil
}

func (qp *QP) sendCapVerbs() int { return qp.v.sendCap }

func (qp *QP) wrsVerbs(n int) int { return max(1, (n+qp.v.dev.maxSGE-1)/qp.v.dev.maxSGE) }

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func (qp *QP) postRecvVerbs(id uint64) error {
	if rc := C.zf_post_recv(qp.v.qp, C.uint64_t(id)); rc != 0 {
		return fmt.Errorf("rdma: %s: post a receive: %w", qp.v.dev.name, syscall.Errno(rc))
	}
	return nil
}

// pollVerbs drains the device's completion queue into the QP's CQ,
// sleeping on the completion channel between bursts.
func (qp *QP) pollVerbs() {
	v := qp.v
	defer v.wg.Done()
	wcs := make([]C.struct_ibv_wc, 32)
	for {
		n := int(C.ibv_poll_cq(v.cq, C.int(len(wcs)), &wcs[0]))
		if n < 0 {
			qp.setErr(fmt.Errorf("rdma: %s: poll the completion queue failed", v.dev.name))
			return
		}
		if n > 0 {
			cs := make([]Completion, 0, n)
			for i := range wcs[:n] {
				cs = append(cs, qp.fromWC(&wcs[i]))
			}
			qp.cq.push(cs...)
			continue
		}
		if C.ibv_req_notify_cq(v.cq, 0) != 0 {
			qp.setErr(fmt.Errorf("rdma: %s: arm the completion queue failed", v.dev.name))
			return
		}
		if m := int(C.ibv_poll_cq(v.cq, C.int(len(wcs)), &wcs[0])); m > 0 {
			cs := make([]Completion, 0, m)
			for i := range wcs[:m] {
				cs = append(cs, qp.fromWC(&wcs[i]))
			}
			qp.cq.push(cs...)
			continue
		}
		select {
		case <-v.stop:
			return
		default:
		}
		if C.zf_wait(v.ch, 50) < 0 {
			qp.setErr(fmt.Errorf("rdma: %s: wait for completions failed", v.dev.name))
			return
		}
	}
}

func (qp *QP) fromWC(wc *C.struct_ibv_wc) Completion {
	c := Completion{WRID: uint64(wc.wr_id), Bytes: int(wc.byte_len)}
	switch wc.opcode {
	case C.IBV_WC_RDMA_WRITE:
		c.Op = OpWrite
	case C.IBV_WC_RDMA_READ:
		c.Op = OpRead
	case C.IBV_WC_RECV_RDMA_WITH_IMM:
		c.Op, c.Imm = OpRecv, uint32(C.zf_imm(wc))
	default:
		c.Op = OpWriteImm
	}
	if wc.status != C.IBV_WC_SUCCESS {
		switch wc.status {
		case C.IBV_WC_LOC_PROT_ERR:
			c.Status = LocalProtErr
		case C.IBV_WC_REM_ACCESS_ERR:
			c.Status = RemAccessErr
		case C.IBV_WC_REM_INV_REQ_ERR:
			c.Status = RemInvReqErr
		case C.IBV_WC_WR_FLUSH_ERR:
			c.Status = WRFlushErr
		default:
			c.Status = TransportErr
		}
		c.Err = fmt.Errorf("rdma: %s: %s (vendor error %#x)", qp.v.dev.name, C.GoString(C.ibv_wc_status_str(wc.status)), uint32(wc.vendor_err))
		qp.setErr(c.Err)
	}
	return c
}

func (qp *QP) setErr(err error) {
	qp.mu.Lock()
	if qp.err == nil {
		qp.err = err
	}
	qp.mu.Unlock()
}

// closeVerbs takes the QP to the error state, waits for the poller and
// destroys the QP, CQ and channel.
func (qp *QP) closeVerbs() {
	v := qp.v
	close(v.stop)
	v.wg.Wait()
	v.destroy()
}

func (v *verbsQP) destroy() {
	if v.qp != nil {
		C.ibv_destroy_qp(v.qp)
		v.qp = nil
	}
	if v.cq != nil {
		C.ibv_destroy_cq(v.cq)
		v.cq = nil
	}
	if v.ch != nil {
		C.ibv_destroy_comp_channel(v.ch)
		v.ch = nil
	}
}
