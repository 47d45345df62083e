package rdma

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// sharedMem is a memfd mapping: the memory of a region that a peer on the
// same host maps (through /proc/PID/fd/N of the owner) to place WRITEs
// and serve READs in it, the emulated provider's stand-in for a NIC's DMA.
type sharedMem struct {
	fd  int
	mem []byte
}

const hugeSize = 2 << 20

// newSharedMem maps size bytes of a new memfd: on 2 MiB hugepages when
// size is a multiple of them and the kernel has some free, else on
// ordinary pages.
func newSharedMem(size int) (*sharedMem, error) {
	if size <= 0 {
		return nil, fmt.Errorf("rdma: a shared region of %d bytes", size)
	}
	if size%hugeSize == 0 {
		if sm, err := mapMemfd(size, unix.MFD_HUGETLB|unix.MFD_HUGE_2MB); err == nil {
			return sm, nil
		}
	}
	return mapMemfd(size, 0)
}

func mapMemfd(size, flags int) (*sharedMem, error) {
	fd, err := unix.MemfdCreate("zflow-rdma", unix.MFD_CLOEXEC|flags)
	if err != nil {
		return nil, fmt.Errorf("rdma: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rdma: size a %d-byte shared region: %w", size, err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rdma: map a %d-byte shared region: %w", size, err)
	}
	return &sharedMem{fd: fd, mem: mem}, nil
}

func (s *sharedMem) close() error {
	if s.mem == nil {
		return nil
	}
	err := unix.Munmap(s.mem)
	s.mem = nil
	return errors.Join(err, unix.Close(s.fd))
}

// Handle is what a peer on the same host needs to map a shared region.
type Handle struct {
	Boot [16]byte // the host's boot id: equal on both ends means one kernel
	PID  int32    // the owner's process
	FD   int32    // the memfd in it
	Size uint64
}

// handle returns mr's handle, or false for a region that is not shared.
func (mr *MR) handle() (Handle, bool) {
	if mr.shared == nil {
		return Handle{}, false
	}
	return Handle{Boot: bootID(), PID: int32(os.Getpid()), FD: int32(mr.shared.fd), Size: uint64(len(mr.mem))}, true
}

// mapPeer maps a peer's shared region, or says why it cannot: another
// host, or a process this one may not reach.
func mapPeer(h Handle) ([]byte, error) {
	if h.Boot != bootID() || h.Boot == ([16]byte{}) {
		return nil, errors.New("the peer runs on another host (its boot id differs)")
	}
	path := "/proc/" + strconv.Itoa(int(h.PID)) + "/fd/" + strconv.Itoa(int(h.FD))
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the peer's region %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat the peer's region %s: %w", path, err)
	}
	if uint64(st.Size) != h.Size {
		return nil, fmt.Errorf("the peer's region %s has %d bytes, its handle says %d", path, st.Size, h.Size)
	}
	mem, err := unix.Mmap(fd, 0, int(h.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("map the peer's region %s: %w", path, err)
	}
	return mem, nil
}

func unmapPeer(mem []byte) error { return unix.Munmap(mem) }

// bootID is /proc/sys/kernel/random/boot_id as 16 bytes (zero if unreadable).
var bootID = sync.OnceValue(func() [16]byte {
	var id [16]byte
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return id
	}
	hex := bytes.ReplaceAll(bytes.TrimSpace(b), []byte("-"), nil)
	for i := 0; i < 16 && 2*i+1 < len(hex); i++ {
		v, err := strconv.ParseUint(string(hex[2*i:2*i+2]), 16, 8)
		if err != nil {
			return [16]byte{}
		}
		id[i] = byte(v)
	}
	return id
})
