//go:build linux

package nvme

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zflowdev/zflow/nvmeof/initiator"
	"github.com/zflowdev/zflow/nvmeof/nvme"
	"github.com/zflowdev/zflow/nvmeof/target"
	"golang.org/x/sys/unix"
)

const ourNQN = "nqn.2024-01.dev.zflow:kernel-host"

// ourTarget is our target on the guest's loopback: a subsystem with a RAM
// namespace (NSID 1) and a file namespace on tmpfs (NSID 2), served on an
// I/O port and a discovery-only port.
type ourTarget struct {
	t          *target.Target
	ram        *target.RAM
	file       string
	addr, disc *net.TCPAddr
}

const nsSize = 16 << 20

func startOurTarget(t *testing.T) *ourTarget {
	t.Helper()
	ram, err := target.NewRAM(nsSize, 9)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ns2.img")
	file, err := target.OpenFile(path, nsSize)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := target.New(target.Config{SubNQN: ourNQN, Namespaces: []target.Namespace{ram, file}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- tg.Serve(ln) }()
	go func() { done <- tg.ServeDiscovery(dln) }()
	t.Cleanup(func() {
		tg.Close()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("our target: %v", err)
			}
		}
		file.Close()
	})
	return &ourTarget{t: tg, ram: ram, file: path, addr: ln.Addr().(*net.TCPAddr), disc: dln.Addr().(*net.TCPAddr)}
}

// TestKernelHostOurTarget is check 1: the kernel's nvme-tcp host discovers,
// connects to, identifies, writes to and reads from our target, and
// disconnects, without and with digests.
func TestKernelHostOurTarget(t *testing.T) {
	guest(t)
	eachDigest(t, func(t *testing.T, digest bool) {
		k := openKmsg(t)
		tg := startOurTarget(t)
		kernelDiscover(t, tg)
		checkKernelLog(t, k)

		opts := fmt.Sprintf("transport=tcp,traddr=127.0.0.1,trsvcid=%d,nqn=%s,hostnqn=%s,hostid=%s,nr_io_queues=2",
			tg.addr.Port, ourNQN, hostNQN, hostID)
		if digest {
			opts += ",hdr_digest,data_digest"
		}
		inst, cntlid, err := fabricsConnect(opts)
		if err != nil {
			t.Fatalf("kernel host connect: %v", err)
		}
		t.Logf("kernel host: connected nvme%d, controller %d", inst, cntlid)
		connected := true
		defer func() {
			if connected {
				deleteController(t, inst)
			}
		}()
		kernelIdentify(t, inst, cntlid, tg)
		devs := namespaces(t, inst, 2)
		t.Logf("kernel host: namespaces %v", devs)
		for nsid, dev := range devs {
			kernelIO(t, tg, nsid, dev)
		}
		deleteController(t, inst)
		connected = false
		waitFor(t, "our target to see the kernel's controller go", func() bool { return tg.t.Controllers() == 0 })
		ls := checkKernelLog(t, k)
		if !hasLine(ls, "new ctrl", ourNQN) || !hasLine(ls, "Removing ctrl", ourNQN) {
			t.Errorf("the kernel log lacks the connect or the disconnect of %s", ourNQN)
		}
	})
}

// kernelDiscover has the kernel make a discovery controller on our
// discovery port, reads the discovery log through it with the admin
// passthrough ioctl, as `nvme discover` does, and deletes it.
func kernelDiscover(t *testing.T, tg *ourTarget) {
	t.Helper()
	inst, _, err := fabricsConnect(fmt.Sprintf("transport=tcp,traddr=127.0.0.1,trsvcid=%d,nqn=%s,hostnqn=%s,hostid=%s",
		tg.disc.Port, nvme.DiscoveryNQN, hostNQN, hostID))
	if err != nil {
		t.Fatalf("kernel discovery controller: %v", err)
	}
	defer deleteController(t, inst)
	if got := sysfs(t, ctrlDir(inst)+"/subsysnqn"); got != nvme.DiscoveryNQN {
		t.Errorf("discovery controller nvme%d: subsysnqn %q", inst, got)
	}
	getLog := func(off uint64, n int) []byte {
		numd := uint32(n/4 - 1)
		return adminCmd(t, inst, passthru{Opcode: nvme.AdminGetLogPage, CDW10: 0x70 | numd<<16, CDW11: numd >> 16,
			CDW12: uint32(off), CDW13: uint32(off >> 32)}, n)
	}
	var h nvme.DiscoveryHeader
	if err := h.Unmarshal(getLog(0, 1024)); err != nil {
		t.Fatalf("discovery log header through the kernel: %v", err)
	}
	if h.NumRec != 1 {
		t.Fatalf("discovery log through the kernel: %d records, want 1", h.NumRec)
	}
	var e nvme.DiscoveryEntry
	if err := e.Unmarshal(getLog(1024, nvme.DiscoveryEntrySize)); err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel discover: genctr %d, entry trtype %d adrfam %d subtype %d traddr %s trsvcid %s subnqn %s",
		h.GenCtr, e.TrType, e.AdrFam, e.SubType, e.TrAddr, e.TrSvcID, e.SubNQN)
	if e.TrType != 3 || e.AdrFam != 1 || e.SubType != 2 || e.TrAddr != "127.0.0.1" ||
		e.TrSvcID != strconv.Itoa(tg.addr.Port) || e.SubNQN != ourNQN {
		t.Errorf("discovery entry %+v, want TCP/IPv4 %s at 127.0.0.1:%d", e, ourNQN, tg.addr.Port)
	}
}

// kernelIdentify checks what the kernel made of our controller: its sysfs
// attributes, and Identify Controller sent through the kernel.
func kernelIdentify(t *testing.T, inst, cntlid int, tg *ourTarget) {
	t.Helper()
	dir := ctrlDir(inst)
	for attr, want := range map[string]string{
		"transport": "tcp", "subsysnqn": ourNQN, "model": "zflow NVMe/TCP target",
		"cntlid": strconv.Itoa(cntlid), "state": "live",
		"address": fmt.Sprintf("traddr=127.0.0.1,trsvcid=%d", tg.addr.Port),
	} {
		if got := sysfs(t, filepath.Join(dir, attr)); !strings.HasPrefix(got, want) {
			t.Errorf("nvme%d/%s = %q, want %q", inst, attr, got, want)
		}
	}
	var id nvme.IdentifyController
	if err := id.Unmarshal(adminCmd(t, inst, passthru{Opcode: nvme.AdminIdentify, CDW10: nvme.CNSController}, nvme.IdentifySize)); err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel identify: cntlid %d mn %q sn %q fr %q subnqn %s nn %d mdts %d ioccsz %d, queues: %s",
		id.CntlID, id.MN, id.SN, id.FR, id.SubNQN, id.NN, id.MDTS, id.IOCCSZ, sysfs(t, dir+"/queue_count"))
	if int(id.CntlID) != cntlid || id.SubNQN != ourNQN || id.NN != 2 {
		t.Errorf("Identify Controller through the kernel: cntlid %d subnqn %q nn %d", id.CntlID, id.SubNQN, id.NN)
	}
}

// kernelIO writes patterns through the kernel's block device of namespace
// nsid with O_DIRECT (a 4 KiB write rides in the capsule, 1 MiB goes through
// R2Ts), reads them back through the kernel, and checks them where our
// target keeps them and through our own initiator.
func kernelIO(t *testing.T, tg *ourTarget, nsid uint32, dev string) {
	t.Helper()
	sectors, _ := strconv.ParseInt(sysfs(t, "/sys/block/"+filepath.Base(dev)+"/size"), 10, 64)
	if sectors*512 != nsSize {
		t.Errorf("%s: %d sectors, our namespace has %d bytes", dev, sectors, nsSize)
	}
	for i, w := range []struct{ off, n int64 }{{0, 4096}, {64 << 10, 1 << 20}, {nsSize - 256<<10, 256 << 10}} {
		p := pattern(uint64(nsid)<<8|uint64(i), int(w.n))
		directIO(t, dev, p, w.off, true)
		if got := directIO(t, dev, p, w.off, false); !bytes.Equal(got, p) {
			t.Fatalf("%s: %d bytes at %d read back through the kernel differ", dev, w.n, w.off)
		}
		at := make([]byte, w.n)
		var err error
		if nsid == 1 {
			_, err = tg.ram.ReadAt(at, w.off)
		} else {
			var f *os.File
			if f, err = os.Open(tg.file); err == nil {
				_, err = f.ReadAt(at, w.off)
				f.Close()
			}
		}
		if err != nil || !bytes.Equal(at, p) {
			t.Fatalf("namespace %d: %d bytes at %d the kernel wrote are not in our target's namespace (%v)", nsid, w.n, w.off, err)
		}
		if got := ourRead(t, tg.addr.String(), ourNQN, nsid, w.off, int(w.n)); !bytes.Equal(got, p) {
			t.Fatalf("namespace %d: %d bytes at %d the kernel wrote read back differently through our initiator", nsid, w.n, w.off)
		}
	}
	concurrentIO(t, dev, nsid)
	t.Logf("%s (nsid %d): 4 KiB, 1 MiB and 256 KiB written with O_DIRECT, equal read back through the kernel, in the namespace and through our initiator; 32 writes of 64 KiB in flight together, read back equal", dev, nsid)
}

// concurrentIO has 32 goroutines write 64 KiB each with O_DIRECT to
// distinct places of dev, then read them back, so the kernel keeps many
// commands in flight on both I/O queues.
func concurrentIO(t *testing.T, dev string, nsid uint32) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatalf("open %s O_DIRECT: %v", dev, err)
	}
	defer f.Close()
	const n, size, base = 32, 64 << 10, 4 << 20
	bufs := alignedBuf(t, n*size)
	for _, write := range []bool{true, false} {
		errs := make(chan error, n)
		for i := range n {
			go func() {
				b, off := bufs[i*size:(i+1)*size], int64(base+i*size*2)
				var err error
				if write {
					copy(b, pattern(uint64(nsid)<<16|1<<12|uint64(i), size))
					_, err = f.WriteAt(b, off)
				} else {
					clear(b)
					if _, err = f.ReadAt(b, off); err == nil && !bytes.Equal(b, pattern(uint64(nsid)<<16|1<<12|uint64(i), size)) {
						err = fmt.Errorf("%d bytes at %d of %s read back differ", size, off, dev)
					}
				}
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("concurrent O_DIRECT I/O (write %v): %v", write, err)
			}
		}
	}
}

// ourRead reads n bytes at off of namespace nsid through our initiator, as
// a second host of the subsystem.
func ourRead(t *testing.T, addr, nqn string, nsid uint32, off int64, n int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := initiator.Connect(ctx, addr, initiator.Config{SubNQN: nqn, HostNQN: ourHostNQN, IOQueues: 1})
	if err != nil {
		t.Fatalf("our initiator: %v", err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Errorf("our initiator: close: %v", err)
		}
	}()
	ns, err := c.Namespace(nsid)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if err := c.ReadAt(ns, b, off); err != nil {
		t.Fatalf("our initiator: read %d bytes at %d of namespace %d: %v", n, off, nsid, err)
	}
	return b
}

// TestKernelHostTargetOnHost: the kernel's host in the guest reaches our
// target running on the HOST (`zflow nvmeof serve`, which run.sh starts
// before the boot and passes as ZFLOW_HOST_NVME) over QEMU's user-mode
// network, as `nvme discover` and `nvme connect -t tcp` would: discovery,
// a connect with digests, Identify Controller, then busybox dd writes a
// pattern to the namespace's block device with O_DIRECT and reads it back
// with O_DIRECT, equal. The test prints what it wrote (offset, length,
// sha256) and run.sh checks those bytes in the target's namespace file on
// the host after the boot.
func TestKernelHostTargetOnHost(t *testing.T) {
	guest(t)
	addr, nqn := os.Getenv("ZFLOW_HOST_NVME"), os.Getenv("ZFLOW_HOST_NQN")
	if addr == "" || nqn == "" {
		t.Fatal("ZFLOW_HOST_NVME or ZFLOW_HOST_NQN is unset: interop/guest/run.sh starts our target on the host and passes its address and NQN")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("ZFLOW_HOST_NVME=%q: %v", addr, err)
	}
	k := openKmsg(t)

	// Discovery, on the same port (serve answers discovery there too).
	dinst, _, err := fabricsConnect(fmt.Sprintf("transport=tcp,traddr=%s,trsvcid=%s,nqn=%s,hostnqn=%s,hostid=%s",
		host, port, nvme.DiscoveryNQN, hostNQN, hostID))
	if err != nil {
		t.Fatalf("kernel discovery controller at %s: %v", addr, err)
	}
	numd := uint32(1024/4 - 1)
	var h nvme.DiscoveryHeader
	if err := h.Unmarshal(adminCmd(t, dinst, passthru{Opcode: nvme.AdminGetLogPage, CDW10: 0x70 | numd<<16}, 1024)); err != nil {
		t.Fatalf("discovery log header through the kernel: %v", err)
	}
	found := false
	for i := range h.NumRec {
		off := uint64(1024 + int(i)*nvme.DiscoveryEntrySize)
		n := uint32(nvme.DiscoveryEntrySize/4 - 1)
		var e nvme.DiscoveryEntry
		if err := e.Unmarshal(adminCmd(t, dinst, passthru{Opcode: nvme.AdminGetLogPage, CDW10: 0x70 | n<<16,
			CDW12: uint32(off), CDW13: uint32(off >> 32)}, nvme.DiscoveryEntrySize)); err != nil {
			t.Fatal(err)
		}
		// The entry names the address the target listens on, the host's
		// 127.0.0.1: what QEMU's NAT turns 10.0.2.2 into.
		t.Logf("kernel discover via %s: entry subtype %d traddr %s trsvcid %s subnqn %s", addr, e.SubType, e.TrAddr, e.TrSvcID, e.SubNQN)
		found = found || (e.SubNQN == nqn && e.TrSvcID == port)
	}
	deleteController(t, dinst)
	if !found {
		t.Fatalf("the discovery log of our target on the host (%d records) lacks %s at port %s", h.NumRec, nqn, port)
	}

	inst, cntlid, err := fabricsConnect(fmt.Sprintf("transport=tcp,traddr=%s,trsvcid=%s,nqn=%s,hostnqn=%s,hostid=%s,nr_io_queues=2,hdr_digest,data_digest",
		host, port, nqn, hostNQN, hostID))
	if err != nil {
		t.Fatalf("kernel host connect to %s: %v", addr, err)
	}
	connected := true
	defer func() {
		if connected {
			deleteController(t, inst)
		}
	}()
	dir := ctrlDir(inst)
	for attr, want := range map[string]string{"transport": "tcp", "subsysnqn": nqn, "model": "zflow NVMe/TCP target",
		"state": "live", "address": fmt.Sprintf("traddr=%s,trsvcid=%s", host, port)} {
		if got := sysfs(t, filepath.Join(dir, attr)); !strings.HasPrefix(got, want) {
			t.Errorf("nvme%d/%s = %q, want %q", inst, attr, got, want)
		}
	}
	var id nvme.IdentifyController
	if err := id.Unmarshal(adminCmd(t, inst, passthru{Opcode: nvme.AdminIdentify, CDW10: nvme.CNSController}, nvme.IdentifySize)); err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel id-ctrl via %s: cntlid %d mn %q sn %q fr %q subnqn %s nn %d", addr, id.CntlID, id.MN, id.SN, id.FR, id.SubNQN, id.NN)
	if int(id.CntlID) != cntlid || id.SubNQN != nqn || id.NN != 1 {
		t.Errorf("Identify Controller through the kernel: cntlid %d (connect said %d) subnqn %q nn %d", id.CntlID, cntlid, id.SubNQN, id.NN)
	}
	dev := namespaces(t, inst, 1)[1]
	if dev == "" {
		t.Fatalf("nvme%d has no block device for namespace 1", inst)
	}

	// Write then read back with busybox dd, O_DIRECT both ways, 4 MiB at
	// 1 MiB into the namespace.
	const off, n = 1 << 20, 4 << 20
	p := pattern(0x6057, n)
	in, back := filepath.Join(t.TempDir(), "in"), filepath.Join(t.TempDir(), "back")
	if err := os.WriteFile(in, p, 0o644); err != nil {
		t.Fatal(err)
	}
	dd := func(args ...string) {
		t.Helper()
		out, err := exec.Command("dd", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dd %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	dd("if="+in, "of="+dev, "bs=1M", fmt.Sprintf("seek=%d", off>>20), fmt.Sprintf("count=%d", n>>20), "oflag=direct", "conv=fsync")
	dd("if="+dev, "of="+back, "bs=1M", fmt.Sprintf("skip=%d", off>>20), fmt.Sprintf("count=%d", n>>20), "iflag=direct")
	got, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, p) {
		t.Fatalf("%s: the %d bytes dd read back at %d differ from what dd wrote (%d bytes read)", dev, n, off, len(got))
	}
	sum := sha256.Sum256(p)
	// run.sh finds this line and checks the bytes in the namespace file.
	fmt.Printf("ZG: HOSTNVME wrote offset=%d bytes=%d sha256=%x\n", off, n, sum)
	deleteController(t, inst)
	connected = false
	ls := checkKernelLog(t, k)
	if !hasLine(ls, "new ctrl", nqn) {
		t.Errorf("the kernel log lacks the connect to %s", nqn)
	}
	t.Logf("%s (our target on the host at %s): 4 MiB written by dd with O_DIRECT and read back equal", dev, addr)
}
