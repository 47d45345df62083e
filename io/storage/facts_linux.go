//go:build linux

package storage

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
// returns its file system type and source.
func mountOf(maj, min uint32) (fstype, source string, err error) {
	file, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", fmt.Errorf("storage: %w", err)
	}
	defer file.Close()
	want := fmt.Sprintf("%d:%d", maj, min)
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fstype, source, ok := parseMountinfo(sc.Text(), want)
		if ok {
			return fstype, source, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", fmt.Errorf("storage: read /proc/self/mountinfo: %w", err)
	}
	return "", "", errors.New("storage: device " + want + " not in /proc/self/mountinfo")
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
