//go:build linux

package nvme

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// guest skips the test outside the NVMe guest.
func guest(t *testing.T) {
	t.Helper()
	if g := os.Getenv("ZFLOW_GUEST"); g != "nvme" {
		t.Skipf("ZFLOW_GUEST=%q, not \"nvme\": this check needs the kernel's nvme-tcp and nvmet-tcp, which the QEMU guest of `make interop` loads", g)
	}
}

// hostNQN names the kernel host in the fabrics connect strings; our own
// initiator uses ourHostNQN.
const (
	hostNQN    = "nqn.2014-08.org.nvmexpress:uuid:4b3a0d7e-6c1f-4f0e-9a55-2f6b7c3d9e01"
	hostID     = "4b3a0d7e-6c1f-4f0e-9a55-2f6b7c3d9e01"
	ourHostNQN = "nqn.2014-08.org.nvmexpress:uuid:7a666c6f-0000-4000-8000-0000000000aa"
)

// waitFor polls cond until it holds or 30 s pass; the kernel creates
// devices and tears controllers down asynchronously. It is a bound, not a
// timing check.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("%s: not after 30 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eachDigest runs f as two subtests: digests off, then header and data
// digests on.
func eachDigest(t *testing.T, f func(t *testing.T, digest bool)) {
	for _, digest := range []bool{false, true} {
		name := "digests=off"
		if digest {
			name = "digests=on"
		}
		t.Run(name, func(t *testing.T) { f(t, digest) })
	}
}

// fabricsConnect writes a connect string to /dev/nvme-fabrics, as nvme-cli
// does, and returns the instance of the controller the kernel made
// (/dev/nvmeN) and its controller id.
func fabricsConnect(opts string) (instance, cntlid int, err error) {
	f, err := os.OpenFile("/dev/nvme-fabrics", os.O_RDWR, 0)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	if _, err := f.Write([]byte(opts)); err != nil {
		return 0, 0, fmt.Errorf("write %q to /dev/nvme-fabrics: %w", opts, err)
	}
	b := make([]byte, 256)
	n, err := f.Read(b)
	if err != nil {
		return 0, 0, fmt.Errorf("read /dev/nvme-fabrics after connecting: %w", err)
	}
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b[:n])), "instance=%d,cntlid=%d", &instance, &cntlid); err != nil {
		return 0, 0, fmt.Errorf("/dev/nvme-fabrics answered %q: %w", b[:n], err)
	}
	return instance, cntlid, nil
}

// ctrlDir is the sysfs directory of controller nvmeN.
func ctrlDir(instance int) string { return fmt.Sprintf("/sys/class/nvme/nvme%d", instance) }

func sysfs(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("sysfs: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// deleteController disconnects controller nvmeN, as `nvme disconnect`
// does, and waits until it is gone.
func deleteController(t *testing.T, instance int) {
	t.Helper()
	dir := ctrlDir(instance)
	if err := os.WriteFile(filepath.Join(dir, "delete_controller"), []byte("1"), 0); err != nil {
		t.Fatalf("disconnect nvme%d: %v", instance, err)
	}
	waitFor(t, "nvme"+strconv.Itoa(instance)+" to go", func() bool {
		_, err := os.Stat(dir)
		return errors.Is(err, os.ErrNotExist)
	})
}

var blockName = regexp.MustCompile(`^nvme\d+n\d+$`)

// namespaces waits for the block devices of controller nvmeN to appear
// (want of them) and returns them by NSID, as /dev paths. With native
// multipath (Debian's kernels) they hang off the subsystem, without it off
// the controller.
func namespaces(t *testing.T, instance, want int) map[uint32]string {
	t.Helper()
	ctrl := fmt.Sprintf("nvme%d", instance)
	found := map[uint32]string{}
	waitFor(t, fmt.Sprintf("%d namespaces of %s", want, ctrl), func() bool {
		dirs := []string{ctrlDir(instance)}
		subs, _ := filepath.Glob("/sys/class/nvme-subsystem/*/" + ctrl)
		for _, s := range subs {
			dirs = append(dirs, filepath.Dir(s))
		}
		for _, d := range dirs {
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				if !blockName.MatchString(e.Name()) {
					continue
				}
				b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "nsid"))
				if err != nil {
					continue
				}
				nsid, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
				if err != nil {
					continue
				}
				dev := "/dev/" + e.Name()
				if _, err := os.Stat(dev); err == nil {
					found[uint32(nsid)] = dev
				}
			}
		}
		return len(found) >= want
	})
	return found
}

// passthru is struct nvme_passthru_cmd of <linux/nvme_ioctl.h> (72 bytes).
type passthru struct {
	Opcode      uint8
	Flags       uint8
	Rsvd1       uint16
	NSID        uint32
	CDW2, CDW3  uint32
	Metadata    uint64
	Addr        uint64
	MetadataLen uint32
	DataLen     uint32
	CDW10       uint32
	CDW11       uint32
	CDW12       uint32
	CDW13       uint32
	CDW14       uint32
	CDW15       uint32
	TimeoutMS   uint32
	Result      uint32
}

// nvmeIoctlAdminCmd is NVME_IOCTL_ADMIN_CMD, _IOWR('N', 0x41, struct
// nvme_admin_cmd).
const nvmeIoctlAdminCmd = 0xC0484E41

// adminCmd sends an admin command through the kernel controller /dev/nvmeN
// (the kernel passes it to the controller as it is) and returns its data,
// len(buf) bytes read into an mmap'd buffer (outside the Go heap, so the
// address handed to the kernel stays valid).
func adminCmd(t *testing.T, instance int, cmd passthru, n int) []byte {
	t.Helper()
	f, err := os.OpenFile(fmt.Sprintf("/dev/nvme%d", instance), os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("admin command: %v", err)
	}
	defer f.Close()
	buf := alignedBuf(t, n)
	cmd.Addr = uint64(uintptr(unsafe.Pointer(&buf[0])))
	cmd.DataLen = uint32(n)
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nvmeIoctlAdminCmd, uintptr(unsafe.Pointer(&cmd)))
	if errno != 0 {
		t.Fatalf("admin opcode %#x on /dev/nvme%d: %v", cmd.Opcode, instance, errno)
	}
	if r != 0 {
		t.Fatalf("admin opcode %#x on /dev/nvme%d: NVMe status %#x", cmd.Opcode, instance, r)
	}
	return bytes.Clone(buf)
}

// alignedBuf is n bytes of page-aligned memory from mmap, for O_DIRECT and
// ioctls; it is unmapped when the test ends.
func alignedBuf(t *testing.T, n int) []byte {
	t.Helper()
	size := (n + 4095) &^ 4095
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap %d bytes: %v", size, err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b[:n]
}

// pattern is n bytes that differ from run to run of a seed.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// directIO writes p at off of a block device or file opened with O_DIRECT
// and reads it back the same way; it returns what it read.
func directIO(t *testing.T, path string, p []byte, off int64, write bool) []byte {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatalf("open %s O_DIRECT: %v", path, err)
	}
	defer f.Close()
	buf := alignedBuf(t, len(p))
	if write {
		copy(buf, p)
		if n, err := f.WriteAt(buf, off); err != nil || n != len(p) {
			t.Fatalf("O_DIRECT write of %d bytes at %d to %s: %d, %v", len(p), off, path, n, err)
		}
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync %s: %v", path, err)
		}
		return nil
	}
	if n, err := f.ReadAt(buf, off); err != nil || n != len(p) {
		t.Fatalf("O_DIRECT read of %d bytes at %d from %s: %d, %v", len(p), off, path, n, err)
	}
	return bytes.Clone(buf)
}

// kmsg follows the kernel log from the moment it is opened.
type kmsg struct{ f *os.File }

func openKmsg(t *testing.T) *kmsg {
	t.Helper()
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/kmsg: %v", err)
	}
	f := os.NewFile(uintptr(fd), "/dev/kmsg")
	t.Cleanup(func() { f.Close() })
	if _, err := unix.Seek(fd, 0, io.SeekEnd); err != nil {
		t.Fatalf("seek /dev/kmsg to its end: %v", err)
	}
	return &kmsg{f: f}
}

// lines returns the kernel's messages since the last call (or the open).
func (k *kmsg) lines(t *testing.T) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(int(k.f.Fd()), buf)
		if errors.Is(err, unix.EAGAIN) {
			return out
		}
		if errors.Is(err, unix.EPIPE) { // records were overwritten: go on
			continue
		}
		if err != nil {
			t.Fatalf("read /dev/kmsg: %v", err)
		}
		rec := string(buf[:n])
		if i := strings.IndexByte(rec, ';'); i >= 0 {
			rec = rec[i+1:]
		}
		if i := strings.IndexByte(rec, '\n'); i >= 0 {
			rec = rec[:i]
		}
		out = append(out, rec)
	}
}

// badKernelLine matches what must not appear in the kernel log during a
// check: warnings, oopses, call traces, and an NVMe host or target
// reporting an error, a timeout, a reset or a reconnect.
var badKernelLine = regexp.MustCompile(`(?i)WARNING|Call Trace|BUG:|Oops|general protection|` +
	`^nvmet?(_tcp)?[ :].*(error|fail|timeout|timed out|reset|reconnect|abort|invalid|mismatch|digest)`)

// checkKernelLog logs the NVMe lines of the kernel log since the last call
// and fails the test on any line badKernelLine matches; it returns them
// all.
func checkKernelLog(t *testing.T, k *kmsg) []string {
	t.Helper()
	ls := k.lines(t)
	for _, l := range ls {
		if strings.HasPrefix(l, "nvme") {
			t.Logf("kernel: %s", l)
		}
		if badKernelLine.MatchString(l) {
			t.Errorf("kernel log: %s", l)
		}
	}
	return ls
}

// hasLine reports whether some line contains every one of parts.
func hasLine(lines []string, parts ...string) bool {
	for _, l := range lines {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}
