package target_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/zflowdev/zflow/nvmeof/initiator"
	"github.com/zflowdev/zflow/nvmeof/nvme"
	"github.com/zflowdev/zflow/nvmeof/target"
	"golang.org/x/sys/unix"
)

// Dataset Management with the deallocate attribute zeroes RAM ranges and
// punches holes in a file namespace; a range past the end fails the whole
// command before anything is freed.
func TestDatasetManagementDeallocate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ns")
	file, err := target.OpenFile(path, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	ram, err := target.NewRAM(8<<20, 12)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serve(t, 0, target.Config{Namespaces: []target.Namespace{ram, file}})
	ctrl := connect(t, addr, initiator.Config{})
	if id := ctrl.Identify; id.ONCS&nvme.ONCSDatasetMgmt == 0 {
		t.Errorf("ONCS %#x does not say Dataset Management", id.ONCS)
	}
	nss, err := ctrl.Namespaces()
	if err != nil || len(nss) != 2 {
		t.Fatal(nss, err)
	}
	for _, ns := range nss {
		bs := 1 << ns.BlockShift
		data := bytes.Repeat([]byte{0xC3}, 1<<20)
		if err := ctrl.Write(0, ns, 0, data); err != nil {
			t.Fatal(err)
		}
		if err := ctrl.Flush(0, ns); err != nil {
			t.Fatal(err)
		}
		// 256 KiB from 128 KiB, and 4 KiB from 768 KiB.
		ranges := []nvme.DSMRange{{SLBA: uint64(128 << 10 / bs), NLB: uint32(256 << 10 / bs)}, {SLBA: uint64(768 << 10 / bs), NLB: uint32(4096 / bs)}}
		bad := append(ranges, nvme.DSMRange{SLBA: ns.Blocks - 1, NLB: 2})
		var se *nvme.StatusError
		if err := ctrl.Deallocate(0, ns, bad); !errors.As(err, &se) || se.Status != nvme.StatusLBAOutOfRange {
			t.Fatalf("namespace %d: a range past the end: %v", ns.ID, err)
		}
		got := make([]byte, len(data))
		if err := ctrl.Read(0, ns, 0, got); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("namespace %d: a failed deallocate changed data (%v)", ns.ID, err)
		}
		if err := ctrl.Deallocate(0, ns, ranges); err != nil {
			t.Fatalf("namespace %d: %v", ns.ID, err)
		}
		want := bytes.Clone(data)
		clear(want[128<<10 : 384<<10])
		clear(want[768<<10 : 772<<10])
		if err := ctrl.Read(0, ns, 0, got); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("namespace %d: after deallocate the ranges are not zeros, or more was freed (%v)", ns.ID, err)
		}
	}
	// The file has a hole where the 256 KiB were: SEEK_HOLE finds it.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hole, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE)
	if err != nil {
		t.Fatal(err)
	}
	if hole > 128<<10 {
		t.Errorf("first hole at %d, want one at 128 KiB", hole)
	}
}
