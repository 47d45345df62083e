//go:build linux

package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// memoryFS are the file systems whose files live in memory (statfs magic).
var memoryFS = map[int64]string{
	unix.TMPFS_MAGIC:     "tmpfs",
	unix.RAMFS_MAGIC:     "ramfs",
	unix.HUGETLBFS_MAGIC: "hugetlbfs",
}

// Probe reads the facts about path's file system and device. A path that
// does not exist yet (a file about to be written) is judged by the nearest
// directory above it that does. What cannot be read is left zero and the
// error says what; the facts read so far are still returned.
func Probe(path string) (Facts, error) {
	f := Facts{GOOS: "linux"}
	p := path
	for {
		if _, err := os.Stat(p); err == nil {
			break
		}
		parent := filepath.Dir(p)
		if parent == p {
			return f, fmt.Errorf("storage: probe %s: no existing directory above it", path)
		}
		p = parent
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(p, &sfs); err != nil {
		return f, fmt.Errorf("storage: statfs %s: %w", p, err)
	}
	if name, ok := memoryFS[int64(sfs.Type)]; ok {
		f.FSType, f.Memory = name, true
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return f, fmt.Errorf("storage: stat %s: %w", p, err)
	}
	maj, min := unix.Major(st.Dev), unix.Minor(st.Dev)
	fstype, source, err := mountOf(maj, min)
	if err == nil {
		if f.FSType == "" {
			f.FSType = fstype
		}
		f.Source = source
	}
	if f.Memory {
		if f.FSType != "hugetlbfs" { // huge pages: one mapped in per 2 MiB
			f.MapSlower = mapSlower(path, st.Dev)
		}
		return f, err
	}
	dev := fmt.Sprintf("/sys/dev/block/%d:%d", maj, min)
	if _, serr := os.Stat(dev); serr != nil {
		return f, err // not a block device (nfs, fuse, overlay's anonymous dev)
	}
	f.Block = true
	if target, lerr := filepath.EvalSymlinks(dev); lerr == nil {
		f.Device = filepath.Base(target)
	}
	q := dev + "/queue"
	if _, serr := os.Stat(q); serr != nil {
		q = dev + "/../queue" // a partition: the queue is its disk's
	}
	f.DeviceDepth = readSysInt(q + "/nr_requests")
	f.Rotational = readSysInt(q+"/rotational") == 1
	f.LogicalBlock = readSysInt(q + "/logical_block_size")
	return f, err
}

func readSysInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return v
}

// mountOf finds the mount of device maj:min in /proc/self/mountinfo and
// returns its file system type and source, from the process's cached
// table (mounts).
func mountOf(maj, min uint32) (fstype, source string, err error) {
	return mounts.lookup(fmt.Sprintf("%d:%d", maj, min))
}

// mountEntry is one mount's facts in the table.
type mountEntry struct{ fstype, source string }

// mountTable is /proc/self/mountinfo parsed once and kept: Select runs per
// file, and reading and parsing the table each time cost more than the
// rest of the probe. It is read again when the kernel says the mount table
// changed — a descriptor of mountinfo kept open polls POLLPRI|POLLERR after
// a mount or an unmount (proc(5)) — and when a device is not in it (a
// mount newer than the last read).
type mountTable struct {
	mu    sync.Mutex
	fd    int // the open mountinfo; -1 until the first lookup
	byDev map[string]mountEntry
	buf   []byte
	reads int // how many times the table was read (tests)
}

var mounts = &mountTable{fd: -1}

// lookup returns the mount of device dev ("maj:min").
func (m *mountTable) lookup(dev string) (fstype, source string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fd < 0 || m.changed() {
		if err := m.load(); err != nil {
			return "", "", err
		}
	}
	e, ok := m.byDev[dev]
	if !ok {
		if err := m.load(); err != nil {
			return "", "", err
		}
		e, ok = m.byDev[dev]
	}
	if !ok {
		return "", "", errors.New("storage: device " + dev + " not in /proc/self/mountinfo")
	}
	return e.fstype, e.source, nil
}

// changed polls the open mountinfo: true when the mount table changed
// since it was last read (or the poll fails, and then the table is read
// again to be safe).
func (m *mountTable) changed() bool {
	fds := []unix.PollFd{{Fd: int32(m.fd), Events: unix.POLLPRI}}
	n, err := unix.Poll(fds, 0)
	return err != nil || (n > 0 && fds[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0)
}

// load reads and parses the table through the kept descriptor (reading it
// from the start also resets the change the poll reported).
func (m *mountTable) load() error {
	if m.fd < 0 {
		fd, err := unix.Open("/proc/self/mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("storage: open /proc/self/mountinfo: %w", err)
		}
		m.fd = fd
	}
	if _, err := unix.Seek(m.fd, 0, io.SeekStart); err != nil {
		return fmt.Errorf("storage: read /proc/self/mountinfo: %w", err)
	}
	m.buf = m.buf[:0]
	for {
		if len(m.buf) == cap(m.buf) {
			m.buf = append(m.buf, make([]byte, max(64<<10, cap(m.buf)))...)[:len(m.buf)]
		}
		n, err := unix.Read(m.fd, m.buf[len(m.buf):cap(m.buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("storage: read /proc/self/mountinfo: %w", err)
		}
		if n == 0 {
			break
		}
		m.buf = m.buf[:len(m.buf)+n]
	}
	byDev := make(map[string]mountEntry, len(m.byDev))
	for line := range strings.SplitSeq(string(m.buf), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 3 {
			continue
		}
		if _, ok := byDev[fields[2]]; ok {
			continue // the first mount of a device names it, as a scan would find
		}
		if fstype, source, ok := parseMountinfo(line, fields[2]); ok {
			byDev[fields[2]] = mountEntry{fstype, source}
		}
	}
	m.byDev = byDev
	m.reads++
	return nil
}

// parseMountinfo reads one mountinfo line (proc(5)): "36 35 98:0 /mnt1
// /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"; ok when
// its major:minor is want.
func parseMountinfo(line, want string) (fstype, source string, ok bool) {
	fields := strings.Fields(line)
	if len(fields) < 7 || fields[2] != want {
		return "", "", false
	}
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" && i+2 < len(fields) {
			return fields[i+1], fields[i+2], true
		}
	}
	return "", "", false
}
