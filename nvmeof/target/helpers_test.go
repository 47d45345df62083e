package target_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/zflowdev/zflow/nvmeof/initiator"
	"github.com/zflowdev/zflow/nvmeof/nvme"
	"github.com/zflowdev/zflow/nvmeof/pdu"
	"github.com/zflowdev/zflow/nvmeof/target"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		targetProcess(path) // this process is a target a test can kill
		return
	}
	goleak.VerifyTestMain(m)
}

const (
	subNQN  = "nqn.2024-01.dev.zflow:test"
	hostNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001"
)

// serve starts a target on a loopback port with one RAM namespace of size
// bytes (4 KiB blocks) plus the given config, and stops it at cleanup.
func serve(t *testing.T, size int64, cfg target.Config) (string, *target.Target) {
	t.Helper()
	if cfg.SubNQN == "" {
		cfg.SubNQN = subNQN
	}
	if len(cfg.Namespaces) == 0 {
		ns, err := target.NewRAM(size, 12)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Namespaces = []target.Namespace{ns}
	}
	tg, err := target.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := listen(t, tg.Serve, func() { tg.Close() })
	return addr, tg
}

// listen runs serve on a new loopback listener; at cleanup stop (nil:
// close the listener) ends it, and serve must return nil.
func listen(t *testing.T, serve func(net.Listener) error, stop func()) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(ln) }()
	t.Cleanup(func() {
		if stop == nil {
			ln.Close()
		} else {
			stop()
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func connect(t *testing.T, addr string, cfg initiator.Config) *initiator.Controller {
	t.Helper()
	if cfg.SubNQN == "" {
		cfg.SubNQN = subNQN
	}
	if cfg.HostNQN == "" {
		cfg.HostNQN = hostNQN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := initiator.Connect(ctx, addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// raw is a host that speaks PDUs by hand, to send what our initiator never
// would and look at every byte that comes back.
type raw struct {
	t   *testing.T
	c   *pdu.Conn
	nc  net.Conn
	cid uint16
}

// dialRaw connects without the ICReq exchange.
func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { nc.Close() })
	c := pdu.NewConn(nc)
	c.Limits.MaxC2HData = 1 << 20
	return &raw{t: t, c: c, nc: nc}
}

// icRaw connects and exchanges ICReq/ICResp with the given digests.
func icRaw(t *testing.T, addr string, digest uint8) (*raw, *pdu.ICResp) {
	t.Helper()
	r := dialRaw(t, addr)
	r.send(&pdu.ICReq{Digest: digest})
	resp, ok := r.next().(*pdu.ICResp)
	if !ok {
		t.Fatal("no ICResp")
	}
	o := pdu.Options{HeaderDigest: digest&pdu.DigestHeader != 0, DataDigest: digest&pdu.DigestData != 0}
	r.c.Recv, r.c.Send = o, o
	return r, resp
}

func (r *raw) send(p pdu.PDU) {
	r.t.Helper()
	if err := r.c.Write(p); err != nil {
		r.t.Fatal(err)
	}
}

func (r *raw) sendBytes(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *raw) next() pdu.PDU {
	r.t.Helper()
	p, err := r.c.ReadPDU()
	if err != nil {
		r.t.Fatalf("read PDU: %v", err)
	}
	return p
}

// term expects a C2HTermReq and then the connection closed.
func (r *raw) term() *pdu.TermReq {
	r.t.Helper()
	p, err := r.c.ReadPDU()
	if err != nil {
		r.t.Fatalf("want a C2HTermReq, got %v", err)
	}
	tr, ok := p.(*pdu.TermReq)
	if !ok || tr.Dir != pdu.TypeC2HTermReq {
		r.t.Fatalf("want a C2HTermReq, got %+v", p)
	}
	tr.Data = append([]byte(nil), tr.Data...)
	if _, err := r.c.ReadPDU(); err == nil {
		r.t.Fatal("the connection stayed open after the TermReq")
	}
	return tr
}

// cmd sends a command (data in the capsule when given) and returns the
// completion and any C2H data, checking the C2HData rules of checklist 27.
func (r *raw) cmd(cmd nvme.Command, data []byte) (nvme.Completion, []byte) {
	r.t.Helper()
	r.cid++
	cmd.CID = r.cid
	cmd.Flags |= nvme.FlagSGL
	if data != nil {
		cmd.SGL = nvme.SGL{ID: nvme.SGLDataBlockOffset, Length: uint32(len(data))}
	}
	r.send(&pdu.CapsuleCmd{SQE: cmd, Data: data})
	var got []byte
	for {
		switch p := r.next().(type) {
		case *pdu.Data:
			if p.Dir != pdu.TypeC2HData || p.CCCID != cmd.CID || int(p.DataO) != len(got) {
				r.t.Fatalf("C2HData for %d at %d, want command %d at %d", p.CCCID, p.DataO, cmd.CID, len(got))
			}
			if p.Success {
				r.t.Fatal("SUCCESS on a C2HData while SQ flow control is on")
			}
			got = append(got, p.Data...)
			if p.Last != (len(got) == int(cmd.SGL.Length)) {
				r.t.Fatalf("LAST_PDU %v at %d of %d bytes", p.Last, len(got), cmd.SGL.Length)
			}
		case *pdu.CapsuleResp:
			if p.CQE.CID != cmd.CID {
				r.t.Fatalf("completion for CID %d, want %d", p.CQE.CID, cmd.CID)
			}
			return p.CQE, got
		default:
			r.t.Fatalf("unexpected %s", p.PDUType())
		}
	}
}

// connectData builds Connect data.
func connectData(t *testing.T, cntlid uint16, sub, host string) []byte {
	t.Helper()
	b := make([]byte, nvme.ConnectDataSize)
	d := nvme.ConnectData{CntlID: cntlid, SubNQN: sub, HostNQN: host}
	if err := d.Marshal(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// adminUp connects an admin queue by hand and enables the controller;
// it returns the controller id.
func (r *raw) adminUp(kato uint32) uint16 {
	r.t.Helper()
	return r.adminUpTo(subNQN, kato)
}

// adminUpTo is adminUp for subsystem sub.
func (r *raw) adminUpTo(sub string, kato uint32) uint16 {
	r.t.Helper()
	cqe, _ := r.cmd(nvme.NewConnect(0, nvme.Connect{SQSize: 31, KATO: kato}), connectData(r.t, nvme.CntlIDDynamic, sub, hostNQN))
	if !cqe.Status.OK() {
		r.t.Fatalf("admin connect: %s", cqe.Status)
	}
	if cqe, _ := r.cmd(nvme.NewPropertySet(0, nvme.PropCC, false, uint64(nvme.CCValue(true, 0))), nil); !cqe.Status.OK() {
		r.t.Fatalf("set CC: %s", cqe.Status)
	}
	return uint16(cqe.DW0)
}

// ioRaw connects a controller's admin queue and its I/O queue 1 by hand,
// with the given digests on the I/O queue, and returns the I/O queue.
func ioRaw(t *testing.T, addr string, digest uint8) *raw {
	t.Helper()
	r, _ := icRaw(t, addr, 0)
	id := r.adminUp(0)
	q, _ := icRaw(t, addr, digest)
	if cqe, _ := q.cmd(nvme.NewConnect(0, nvme.Connect{QID: 1, SQSize: 31}), connectData(t, id, subNQN, hostNQN)); !cqe.Status.OK() {
		t.Fatalf("I/O connect: %s", cqe.Status)
	}
	t.Cleanup(func() { r.nc.Close() })
	return q
}
