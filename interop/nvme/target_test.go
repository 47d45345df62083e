//go:build linux

package nvme

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/zflowdev/zflow/nvmeof/initiator"
)

const (
	kernelNQN  = "nqn.2024-01.dev.zflow:kernel-target"
	kernelPort = 4420
	nvmetRoot  = "/sys/kernel/config/nvmet"
	nullb      = "/dev/nullb0" // null_blk, memory backed, 1 GiB (the guest's /init)
	fileSize   = 32 << 20
)

// kernelTarget is the kernel's nvmet-tcp target, configured through
// configfs: subsystem kernelNQN (any host) with namespace 1 on null_blk
// and namespace 2 on a file on tmpfs (buffered_io=1: tmpfs has no
// O_DIRECT), on a TCP port at 127.0.0.1:4420. Cleanup takes it all down
// again, in reverse.
type kernelTarget struct {
	addr string
	file string
}

func startKernelTarget(t *testing.T) *kernelTarget {
	t.Helper()
	var undo []func() error
	t.Cleanup(func() {
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](); err != nil {
				t.Errorf("nvmet teardown: %v", err)
			}
		}
	})
	mkdir := func(p string) {
		t.Helper()
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatalf("nvmet configfs: %v", err)
		}
		undo = append(undo, func() error { return os.Remove(p) })
	}
	set := func(p, v string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			t.Fatalf("nvmet configfs: write %q to %s: %v", v, p, err)
		}
	}
	file := filepath.Join(t.TempDir(), "nvmet-ns2.img")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, fileSize); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(nvmetRoot, "subsystems", kernelNQN)
	mkdir(sub)
	set(sub+"/attr_allow_any_host", "1")
	for nsid, dev := range []string{nullb, file} {
		ns := filepath.Join(sub, "namespaces", strconv.Itoa(nsid+1))
		mkdir(ns)
		set(ns+"/device_path", dev)
		if dev == file {
			set(ns+"/buffered_io", "1")
		}
		set(ns+"/enable", "1")
		undo = append(undo, func() error { return os.WriteFile(ns+"/enable", []byte("0"), 0) })
	}
	port := filepath.Join(nvmetRoot, "ports", "1")
	mkdir(port)
	set(port+"/addr_trtype", "tcp")
	set(port+"/addr_adrfam", "ipv4")
	set(port+"/addr_traddr", "127.0.0.1")
	set(port+"/addr_trsvcid", strconv.Itoa(kernelPort))
	link := filepath.Join(port, "subsystems", kernelNQN)
	if err := os.Symlink(sub, link); err != nil {
		t.Fatalf("nvmet configfs: link the subsystem to the port: %v", err)
	}
	undo = append(undo, func() error { return os.Remove(link) })
	return &kernelTarget{addr: fmt.Sprintf("127.0.0.1:%d", kernelPort), file: file}
}

func connectKernel(t *testing.T, kt *kernelTarget, digest bool, queues int) *initiator.Controller {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := initiator.Connect(ctx, kt.addr, initiator.Config{SubNQN: kernelNQN, HostNQN: ourHostNQN,
		HeaderDigest: digest, DataDigest: digest, IOQueues: queues, QueueDepth: 32, KATO: 5 * time.Second})
	if err != nil {
		t.Fatalf("our initiator: connect to the kernel target: %v", err)
	}
	return c
}

// TestOurHostKernelTarget is check 2: our initiator discovers, connects to,
// identifies, writes to and reads from the kernel's nvmet-tcp target,
// without and with digests.
func TestOurHostKernelTarget(t *testing.T) {
	guest(t)
	kt := startKernelTarget(t)
	eachDigest(t, func(t *testing.T, digest bool) {
		k := openKmsg(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ents, err := initiator.Discover(ctx, kt.addr, initiator.Config{HostNQN: ourHostNQN, HeaderDigest: digest, DataDigest: digest})
		if err != nil {
			t.Fatalf("our initiator: discover on the kernel target: %v", err)
		}
		found := false
		for _, e := range ents {
			t.Logf("discover: trtype %d adrfam %d subtype %d treq %d traddr %s trsvcid %s subnqn %s",
				e.TrType, e.AdrFam, e.SubType, e.TReq, e.TrAddr, e.TrSvcID, e.SubNQN)
			found = found || (e.SubNQN == kernelNQN && e.SubType == 2 && e.TrType == 3 && e.TrAddr == "127.0.0.1" && e.TrSvcID == strconv.Itoa(kernelPort))
		}
		if !found {
			t.Fatalf("the kernel's discovery log does not list %s at %s", kernelNQN, kt.addr)
		}

		c := connectKernel(t, kt, digest, 2)
		id := c.Identify
		t.Logf("identify: cntlid %d mn %q fr %q subnqn %s nn %d mdts %d ioccsz %d maxcmd %d, %d I/O queues",
			id.CntlID, id.MN, id.FR, id.SubNQN, id.NN, id.MDTS, id.IOCCSZ, id.MaxCmd, c.IOQueues())
		if id.SubNQN != kernelNQN || id.MN != "Linux" || id.NN < 2 || c.IOQueues() != 2 {
			t.Errorf("Identify Controller of the kernel target: %+v, %d I/O queues", id, c.IOQueues())
		}
		nss, err := c.Namespaces()
		if err != nil {
			t.Fatal(err)
		}
		if len(nss) != 2 || nss[0].Blocks<<nss[0].BlockShift != 1<<30 || nss[1].Blocks<<nss[1].BlockShift != fileSize {
			t.Fatalf("namespaces of the kernel target: %+v, want 1 GiB and %d bytes", nss, fileSize)
		}
		for _, ns := range nss {
			ourIO(t, c, kt, ns, digest)
		}
		if err := c.Close(); err != nil {
			t.Errorf("our initiator: disconnect from the kernel target: %v", err)
		}
		ls := checkKernelLog(t, k)
		if !hasLine(ls, "nvmet: creating nvm controller", kernelNQN, ourHostNQN) {
			t.Errorf("the kernel log does not show nvmet making a controller for %s", ourHostNQN)
		}
	})
}

// ourIO writes patterns of several sizes (in the capsule, through one R2T,
// larger than one command) at several offsets of ns, all in flight
// together, reads them back through our initiator, and checks them where
// the kernel keeps them: null_blk read with O_DIRECT (nvmet's block
// backend bypasses the page cache), the file read through the page cache
// (nvmet's buffered file backend goes through it).
func ourIO(t *testing.T, c *initiator.Controller, kt *kernelTarget, ns initiator.Namespace, digest bool) {
	t.Helper()
	type w struct{ off, n int64 }
	ws := []w{{0, 4096}, {8192, 512}, {1 << 20, 16 << 10}, {2 << 20, 128 << 10}, {4 << 20, 3 << 20}, {12<<20 + 4096, 1 << 20}}
	seed := uint64(ns.ID) << 16
	if digest {
		seed |= 1 << 8
	}
	errs := make(chan error, len(ws))
	for i, x := range ws {
		go func() { errs <- c.WriteAt(ns, pattern(seed|uint64(i), int(x.n)), x.off) }()
	}
	for range ws {
		if err := <-errs; err != nil {
			t.Fatalf("our initiator: write to the kernel target: %v", err)
		}
	}
	if err := c.Flush(0, ns); err != nil {
		t.Fatalf("our initiator: flush on the kernel target: %v", err)
	}
	for i, x := range ws {
		p := pattern(seed|uint64(i), int(x.n))
		got := make([]byte, x.n)
		if err := c.ReadAt(ns, got, x.off); err != nil {
			t.Fatalf("our initiator: read from the kernel target: %v", err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("namespace %d: %d bytes at %d read back through our initiator differ", ns.ID, x.n, x.off)
		}
		var at []byte
		if ns.ID == 1 {
			at = directIO(t, nullb, p, x.off, false)
		} else {
			f, err := os.Open(kt.file)
			if err != nil {
				t.Fatal(err)
			}
			at = make([]byte, x.n)
			_, err = f.ReadAt(at, x.off)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(at, p) {
			t.Fatalf("namespace %d: %d bytes at %d our initiator wrote are not on the kernel target's backing store", ns.ID, x.n, x.off)
		}
	}
	t.Logf("namespace %d (%d blocks of %d): %d writes of 512 B to 3 MiB in flight together, equal read back through our initiator and on the backing store",
		ns.ID, ns.Blocks, 1<<ns.BlockShift, len(ws))
}
