//go:build linux

package uring

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/io/storage"
	"github.com/zflowdev/zflow/io/storage/storagetest"

	_ "github.com/zflowdev/zflow/io/posix"
)

// withSysctl plays a kernel whose kernel.io_uring_disabled is value.
func withSysctl(t *testing.T, disabled, group string) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "io_uring_disabled"), []byte(disabled+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if group != "" {
		if err := os.WriteFile(filepath.Join(dir, "io_uring_group"), []byte(group+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := sysctlDir
	sysctlDir = dir
	resetProbe()
	t.Cleanup(func() { sysctlDir = old; resetProbe() })
}

func TestDisabledFallback(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("io_uring unavailable for real: %v", err)
	}
	disk := storagetest.DiskDir(t)
	facts, _ := storage.Probe(disk)
	withSysctl(t, "2", "")
	if err := Available(); err == nil || !strings.Contains(err.Error(), "io_uring_disabled = 2") {
		t.Fatalf("Available with io_uring_disabled = 2: %v", err)
	}
	if _, err := storage.Select("uring", disk+"/x", storage.Options{}); err == nil || !strings.Contains(err.Error(), "disabled for every process") {
		t.Errorf("explicit uring while disabled: %v, want the reason", err)
	}
	if _, err := Open(disk+"/x", os.O_RDONLY, 0, storage.Options{}); err == nil || !strings.Contains(err.Error(), "io_uring_disabled") {
		t.Errorf("Open while disabled: %v", err)
	}
	// auto on the disk: Decide with the real facts, since whether this
	// disk is a block device depends on the machine.
	disk4 := storage.Facts{GOOS: "linux", FSType: "ext4", Block: true, Device: "vda", DeviceDepth: 64}
	if facts.Block {
		disk4 = facts
	}
	name, reason, _, err := storage.Decide("auto", disk4, storage.Options{QueueDepth: 32}, func(n string) error {
		if n == Name {
			return Available()
		}
		return nil
	})
	if err != nil || name != "posix" || !strings.Contains(reason, "io_uring is unavailable") || !strings.Contains(reason, "io_uring_disabled = 2") {
		t.Errorf("auto while disabled: %s (%q, %v), want posix with the reason", name, reason, err)
	}
	if facts.Block && facts.DeviceDepth != 1 {
		b, err := storage.Select("auto", disk+"/x", storage.Options{QueueDepth: 32})
		if err != nil || b.Name() != "posix" || !strings.Contains(b.Reason(), "io_uring_disabled = 2") {
			t.Errorf("Select auto while disabled: %v, %v", b, err)
		}
	}
}

func TestDisabledForGroup(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("io_uring unavailable for real: %v", err)
	}
	withSysctl(t, "1", "12345")
	err := Available()
	if os.Geteuid() == 0 {
		if err != nil {
			t.Errorf("root under io_uring_disabled = 1: %v", err)
		}
		if err := inGroup(filepath.Join(t.TempDir(), "none")); err != nil {
			t.Errorf("inGroup as root: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "not in io_uring_group 12345") {
		t.Errorf("io_uring_disabled = 1, not in the group: %v", err)
	}
}

func TestAutoPicksUring(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	disk := storagetest.DiskDir(t)
	facts, _ := storage.Probe(disk)
	if !facts.Block || facts.DeviceDepth == 1 {
		t.Skipf("the work tree is not on a block device with a queue here (%+v)", facts)
	}
	b, err := storage.Select("auto", disk+"/x", storage.Options{QueueDepth: 32})
	if err != nil || b.Name() != Name {
		t.Fatalf("auto on %s: %v, %v", facts.Device, b, err)
	}
	t.Log(b.Reason())
}
