package target_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"

	"github.com/zflowdev/zflow/nvmeof/initiator"
	"github.com/zflowdev/zflow/nvmeof/nvme"
	"github.com/zflowdev/zflow/nvmeof/pdu"
	"github.com/zflowdev/zflow/nvmeof/target"
)

// A bad data digest fails the command it carries data for with a transient
// transport error; the connection and the next commands go on.
func TestDataDigestFailsTheCommand(t *testing.T) {
	addr, _ := serve(t, 1<<20, target.Config{})
	q := ioRaw(t, addr, pdu.DigestHeader|pdu.DigestData)
	o := pdu.Options{HeaderDigest: true, DataDigest: true}
	good := bytes.Repeat([]byte{0x5A}, 4096)
	read := nvme.Command{Opcode: nvme.IORead, NSID: 1, SGL: nvme.SGL{ID: nvme.SGLTransportData, Length: 4096}}
	read.SetLBA(2, 1)

	// In the capsule.
	w := nvme.Command{Opcode: nvme.IOWrite, Flags: nvme.FlagSGL, CID: 200, NSID: 1, SGL: nvme.SGL{ID: nvme.SGLDataBlockOffset, Length: 4096}}
	w.SetLBA(2, 1)
	b := pdu.Encode(nil, &pdu.CapsuleCmd{SQE: w, Data: bytes.Repeat([]byte{0xEE}, 4096)}, o)
	b[len(b)-1] ^= 0xFF
	q.sendBytes(b)
	if resp, ok := q.next().(*pdu.CapsuleResp); !ok || resp.CQE.CID != 200 || resp.CQE.Status != nvme.StatusTransientTransport {
		t.Fatalf("in-capsule write with a bad digest: %+v", resp)
	}
	if cqe, got := q.cmd(read, nil); !cqe.Status.OK() || !bytes.Equal(got, make([]byte, 4096)) {
		t.Fatalf("the failed write reached the namespace (%s)", cqe.Status)
	}
	if cqe, _ := q.cmd(w, good); !cqe.Status.OK() {
		t.Fatalf("write after the digest error: %s", cqe.Status)
	}

	// After an R2T: the first of two H2CData PDUs is damaged.
	w.CID, w.SGL = 201, nvme.SGL{ID: nvme.SGLTransportData, Length: 8192}
	w.SetLBA(2, 2)
	q.send(&pdu.CapsuleCmd{SQE: w})
	r2t := q.next().(*pdu.R2T)
	b = pdu.Encode(nil, &pdu.Data{Dir: pdu.TypeH2CData, CCCID: 201, TTAG: r2t.TTAG, Data: bytes.Repeat([]byte{0xEE}, 4096)}, o)
	b[len(b)-1] ^= 0xFF
	q.sendBytes(b)
	q.send(&pdu.Data{Dir: pdu.TypeH2CData, CCCID: 201, TTAG: r2t.TTAG, DataO: 4096, Data: good, Last: true})
	if resp, ok := q.next().(*pdu.CapsuleResp); !ok || resp.CQE.CID != 201 || resp.CQE.Status != nvme.StatusTransientTransport {
		t.Fatalf("R2T write with a bad digest: %+v", resp)
	}
	if cqe, got := q.cmd(read, nil); !cqe.Status.OK() || !bytes.Equal(got, good) {
		t.Fatalf("read after the failed write: %s", cqe.Status)
	}
}

// corruptConn flips one byte of the first run of 64 bytes of 0xA5 it
// reads: the data of a block the test wrote, on its way back.
type corruptConn struct {
	net.Conn
	done bool
}

func (c *corruptConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if !c.done {
		if i := bytes.Index(b[:n], bytes.Repeat([]byte{0xA5}, 64)); i >= 0 {
			b[i+10] ^= 0x01
			c.done = true
		}
	}
	return n, err
}

// The initiator fails a read whose C2H data has a bad digest with a
// transient transport error and keeps the queue.
func TestDataDigestOnReadFailsTheCommand(t *testing.T) {
	addr, _ := serve(t, 1<<20, target.Config{})
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &corruptConn{Conn: nc}, nil
	}
	ctrl := connect(t, addr, initiator.Config{HeaderDigest: true, DataDigest: true, Dial: dial})
	ns, err := ctrl.Namespace(1)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{0xA5}, 8192)
	if err := ctrl.Write(0, ns, 0, data); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8192)
	err = ctrl.Read(0, ns, 0, got)
	var se *nvme.StatusError
	if !errors.As(err, &se) || se.Status != nvme.StatusTransientTransport {
		t.Fatalf("read with a corrupted C2HData: %v, want a transient transport error", err)
	}
	if err := ctrl.Read(0, ns, 0, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read again: %v (equal %v)", err, bytes.Equal(got, data))
	}
}

// A write larger than R2TChunk gets several R2Ts, each asked once the
// data of the one before has arrived.
func TestSeveralR2Ts(t *testing.T) {
	addr, _ := serve(t, 1<<20, target.Config{R2TChunk: 8192, MaxH2CData: 8192})
	q := ioRaw(t, addr, 0)
	data := make([]byte, 20480)
	for i := range data {
		data[i] = byte(i * 7)
	}
	w := nvme.Command{Opcode: nvme.IOWrite, Flags: nvme.FlagSGL, CID: 300, NSID: 1, SGL: nvme.SGL{ID: nvme.SGLTransportData, Length: uint32(len(data))}}
	w.SetLBA(1, 5)
	q.send(&pdu.CapsuleCmd{SQE: w})
	var asked []uint32
	for off := uint32(0); off < uint32(len(data)); {
		r2t, ok := q.next().(*pdu.R2T)
		if !ok || r2t.CCCID != 300 || r2t.R2TO != off {
			t.Fatalf("R2T %+v, want one at %d", r2t, off)
		}
		asked = append(asked, r2t.R2TL)
		for o := r2t.R2TO; o < r2t.R2TO+r2t.R2TL; o += 4096 {
			end := min(o+4096, r2t.R2TO+r2t.R2TL)
			q.send(&pdu.Data{Dir: pdu.TypeH2CData, CCCID: 300, TTAG: r2t.TTAG, DataO: o, Data: data[o:end], Last: end == r2t.R2TO+r2t.R2TL})
		}
		off += r2t.R2TL
	}
	if resp, ok := q.next().(*pdu.CapsuleResp); !ok || !resp.CQE.Status.OK() {
		t.Fatalf("completion %+v", resp)
	}
	if len(asked) != 3 || asked[0] != 8192 || asked[1] != 8192 || asked[2] != 4096 {
		t.Errorf("R2Ts asked for %v, want [8192 8192 4096]", asked)
	}
	read := nvme.Command{Opcode: nvme.IORead, NSID: 1, SGL: nvme.SGL{ID: nvme.SGLTransportData, Length: uint32(len(data))}}
	read.SetLBA(1, 5)
	if cqe, got := q.cmd(read, nil); !cqe.Status.OK() || !bytes.Equal(got, data) {
		t.Fatalf("read back: %s", cqe.Status)
	}
	// Data past the current R2T, though within the command, is out of range.
	q.send(&pdu.CapsuleCmd{SQE: w})
	r2t := q.next().(*pdu.R2T)
	q.send(&pdu.Data{Dir: pdu.TypeH2CData, CCCID: 300, TTAG: r2t.TTAG, Data: data[:4096]})
	q.send(&pdu.Data{Dir: pdu.TypeH2CData, CCCID: 300, TTAG: r2t.TTAG, DataO: 4096, Data: data[4096:12288]})
	if tr := q.term(); tr.FES != pdu.FESDataOutOfRange {
		t.Errorf("data past the R2T: FES %d", tr.FES)
	}

	// Our initiator follows several R2Ts, many commands at once.
	addr, _ = serve(t, 4<<20, target.Config{R2TChunk: 16384, MaxH2CData: 4096})
	ctrl := connect(t, addr, initiator.Config{IOQueues: 2, QueueDepth: 16})
	ns, err := ctrl.Namespace(1)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat(data, 13)[:256<<10]
	if err := ctrl.Write(1, ns, 16, big); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(big))
	if err := ctrl.Read(0, ns, 16, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read back 256 KiB: %v", err)
	}
}
