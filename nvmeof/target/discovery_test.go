package target_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/zflowdev/zflow/nvmeof/initiator"
	"github.com/zflowdev/zflow/nvmeof/nvme"
	"github.com/zflowdev/zflow/nvmeof/target"
)

const (
	otherNQN   = "nqn.2024-01.dev.zflow:other"
	privateNQN = "nqn.2024-01.dev.zflow:private"
)

// serveDiscovery starts a target of three subsystems (the last one for
// another host only) on an I/O port and a discovery-only port.
func serveDiscovery(t *testing.T) (ioAddr, discAddr string, tg *target.Target) {
	t.Helper()
	ram := func() []target.Namespace {
		ns, err := target.NewRAM(1<<20, 12)
		if err != nil {
			t.Fatal(err)
		}
		return []target.Namespace{ns}
	}
	ioAddr, tg = serve(t, 1<<20, target.Config{Subsystems: []target.Subsystem{
		{NQN: otherNQN, Namespaces: ram()},
		{NQN: privateNQN, Namespaces: ram(), AllowHosts: []string{"nqn.2014-08.org.nvmexpress:uuid:someone-else"}},
	}})
	return ioAddr, listen(t, tg.ServeDiscovery, nil), tg
}

// getLog reads n bytes of the discovery log at off through the raw host.
func (r *raw) getLog(off uint64, n uint32) []byte {
	r.t.Helper()
	cqe, data := r.cmd(nvme.NewGetLogPage(0, nvme.LogDiscovery, off, n, true), nil)
	if !cqe.Status.OK() || len(data) != int(n) {
		r.t.Fatalf("get log 0x70 at %d, %d bytes: %s, %d bytes", off, n, cqe.Status, len(data))
	}
	return data
}

// TestChecklist25and26DiscoveryLog reads the discovery log as libnvme
// does: a 20-byte header, the entries from offset 1024, the header again.
func TestChecklist25and26DiscoveryLog(t *testing.T) {
	ioAddr, discAddr, _ := serveDiscovery(t)
	r, _ := icRaw(t, discAddr, 0)
	r.adminUpTo(nvme.DiscoveryNQN, 0)

	cqe, data := r.cmd(nvme.NewIdentify(0, nvme.CNSController, 0), nil)
	var id nvme.IdentifyController
	if !cqe.Status.OK() || id.Unmarshal(data) != nil {
		t.Fatalf("identify: %s", cqe.Status)
	}
	if id.CntrlType != nvme.CntrlTypeDiscovery || id.SubNQN != nvme.DiscoveryNQN || id.NN != 0 {
		t.Errorf("identify: controller type %d, NQN %q, NN %d", id.CntrlType, id.SubNQN, id.NN)
	}

	var h1, h2 nvme.DiscoveryHeader
	if err := h1.Unmarshal(r.getLog(0, 20)); err != nil {
		t.Fatal(err)
	}
	// The subsystem of the legacy fields and otherNQN: the private one is
	// not for this host. One I/O port; the discovery port is not listed.
	if h1.NumRec != 2 || h1.GenCtr == 0 {
		t.Fatalf("header %+v, want 2 records", h1)
	}
	entries := r.getLog(nvme.DiscoveryHeaderSize, uint32(h1.NumRec)*nvme.DiscoveryEntrySize)
	if err := h2.Unmarshal(r.getLog(0, 20)); err != nil {
		t.Fatal(err)
	}
	if h2 != h1 {
		t.Errorf("GENCTR moved between reads: %+v then %+v", h1, h2)
	}
	host, port, _ := net.SplitHostPort(ioAddr)
	portID := uint16(0)
	for i, want := range []string{subNQN, otherNQN} {
		var e nvme.DiscoveryEntry
		if err := e.Unmarshal(entries[i*nvme.DiscoveryEntrySize:]); err != nil {
			t.Fatal(err)
		}
		if e.TrType != nvme.TrTypeTCP || e.AdrFam != nvme.AdrFamIPv4 || e.SubType != nvme.SubTypeNVM ||
			e.CntlID != 0xFFFF || e.ASQSZ < 32 || e.TReq != 0 || e.SecType != 0 {
			t.Errorf("entry %d: %+v", i, e)
		}
		if e.SubNQN != want || e.TrAddr != host || e.TrSvcID != port {
			t.Errorf("entry %d: %s at %s:%s, want %s at %s", i, e.SubNQN, e.TrAddr, e.TrSvcID, want, ioAddr)
		}
		if i == 0 {
			portID = e.PortID
		} else if e.PortID != portID {
			t.Errorf("entry %d: port id %d, want %d (the same port)", i, e.PortID, portID)
		}
	}
	// TRSVCID and TRADDR are ASCII padded with NULs or spaces.
	e0 := entries[:nvme.DiscoveryEntrySize]
	if string(e0[32:32+len(port)]) != port || string(e0[512:512+len(host)]) != host {
		t.Errorf("TRSVCID %q TRADDR %q", e0[32:64], e0[512:544])
	}
	// A window past the log's end is zeros.
	for _, b := range r.getLog(nvme.DiscoveryHeaderSize+8*nvme.DiscoveryEntrySize, 4096) {
		if b != 0 {
			t.Fatal("bytes past the discovery log are not zero")
		}
	}
	// An unaligned offset is an invalid field; a discovery controller has
	// no namespaces and no I/O queues.
	if cqe, _ := r.cmd(nvme.NewGetLogPage(0, nvme.LogDiscovery, 2, 20, false), nil); cqe.Status != nvme.StatusInvalidField {
		t.Errorf("offset 2: %s", cqe.Status)
	}
	if cqe, _ := r.cmd(nvme.NewGetLogPage(0, nvme.LogSMART, 0, 512, false), nil); cqe.Status != nvme.StatusInvalidLogPage {
		t.Errorf("SMART log of a discovery controller: %s", cqe.Status)
	}
	if cqe, _ := r.cmd(nvme.NewIdentify(0, nvme.CNSActiveNSList, 0), nil); cqe.Status != nvme.StatusInvalidField {
		t.Errorf("namespace list of a discovery controller: %s", cqe.Status)
	}
}

// TestDiscover: the initiator discovers through the discovery-only port,
// connects to what it found and does I/O; the discovery port refuses the
// subsystems; a new port changes the generation and shows in the log.
func TestDiscover(t *testing.T) {
	ioAddr, discAddr, tg := serveDiscovery(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := initiator.Config{HostNQN: hostNQN}
	ents, err := initiator.Discover(ctx, discAddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 || ents[1].SubNQN != otherNQN {
		t.Fatalf("discovered %+v", ents)
	}
	// Discovery also answers on the I/O port.
	if again, err := initiator.Discover(ctx, ioAddr, cfg); err != nil || len(again) != 2 {
		t.Fatalf("discover on the I/O port: %v, %v", again, err)
	}
	e := ents[1]
	c := connect(t, net.JoinHostPort(e.TrAddr, e.TrSvcID), initiator.Config{SubNQN: e.SubNQN})
	ns, err := c.Namespace(1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	buf[7] = 7
	if err := c.Write(0, ns, 3, buf); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	if err := c.Read(0, ns, 3, got); err != nil || got[7] != 7 {
		t.Fatalf("read back: %v, byte 7 = %d", err, got[7])
	}

	if _, err := initiator.Connect(ctx, discAddr, initiator.Config{SubNQN: subNQN, HostNQN: hostNQN}); err == nil {
		t.Error("a subsystem was reachable on the discovery-only port")
	}
	r, _ := icRaw(t, ioAddr, 0)
	cntlid := r.adminUpTo(nvme.DiscoveryNQN, 0)
	io, _ := icRaw(t, ioAddr, 0)
	cqe, _ := io.cmd(nvme.NewConnect(0, nvme.Connect{QID: 1, SQSize: 31}), connectData(t, cntlid, nvme.DiscoveryNQN, hostNQN))
	if cqe.Status != nvme.StatusConnectInvalidParm || cqe.DW0 != nvme.ConnectInvalidParam(nvme.ConnectOffQID, false) {
		t.Errorf("I/O queue of a discovery controller: %s, DW0 %#x", cqe.Status, cqe.DW0)
	}

	var h1 nvme.DiscoveryHeader
	h1.Unmarshal(r.getLog(0, 20))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tg.Serve(ln) }()
	defer func() { ln.Close(); <-done }()
	var h2 nvme.DiscoveryHeader
	for h2.NumRec != 4 { // Serve registers the port in its own goroutine
		h2.Unmarshal(r.getLog(0, 20))
		time.Sleep(time.Millisecond)
	}
	if h2.GenCtr == h1.GenCtr {
		t.Errorf("a new port left GENCTR at %d", h1.GenCtr)
	}
	_, newPort, _ := net.SplitHostPort(ln.Addr().String())
	var last nvme.DiscoveryEntry
	last.Unmarshal(r.getLog(nvme.DiscoveryHeaderSize+3*nvme.DiscoveryEntrySize, nvme.DiscoveryEntrySize))
	if last.TrSvcID != newPort || last.SubNQN != otherNQN {
		t.Errorf("last entry %s at port %s, want %s at %s", last.SubNQN, last.TrSvcID, otherNQN, newPort)
	}
}

// TestDiscoveryCapsuleSizesReserved: a discovery controller has no I/O
// queues, so its Identify Controller leaves IOCCSZ and IORCSZ 0, as
// Linux's nvmet does; our initiator connected to nvmet's discovery
// controller refused it for that until the kernel showed it
// (interop/nvme, TestOurHostKernelTarget).
func TestDiscoveryCapsuleSizesReserved(t *testing.T) {
	_, discAddr, _ := serveDiscovery(t)
	c := connect(t, discAddr, initiator.Config{SubNQN: nvme.DiscoveryNQN})
	if id := c.Identify; id.IOCCSZ != 0 || id.IORCSZ != 0 || id.CntrlType != nvme.CntrlTypeDiscovery {
		t.Fatalf("discovery controller: IOCCSZ %d IORCSZ %d type %d, want 0, 0, %d", id.IOCCSZ, id.IORCSZ, id.CntrlType, nvme.CntrlTypeDiscovery)
	}
	if _, err := c.DiscoveryLog(); err != nil {
		t.Fatal(err)
	}
}
