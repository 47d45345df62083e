package atomicfile

import (
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Owner identifies the process that made a temporary file, so that a later
// run can tell a dead run's leftovers from a live run's work in progress.
//
// A pid alone is not enough: pids are recycled. The process's start time (in
// clock ticks after boot, field 22 of /proc/<pid>/stat) tells a recycled pid
// apart, the boot id tells a pid of a previous boot apart, and Space, a hash
// of the host name, /etc/machine-id and the pid namespace, says in which pid
// space the pid means anything: a file made in another space (another host
// sharing the directory, another container) is never judged.
type Owner struct {
	Space uint32 // FNV-1a of host name, machine id and pid namespace
	Boot  uint32 // first 32 bits of /proc/sys/kernel/random/boot_id
	PID   int
	Start uint64 // start time in clock ticks after boot
}

// Liveness is what Alive can say about an owner.
type Liveness int

const (
	// Live: the owner runs (or may run: nothing proves the contrary).
	Live Liveness = iota
	// Dead: the owner is gone; its files are leftovers.
	Dead
	// Foreign: the owner lives in another host, container or pid
	// namespace; this process cannot tell, so its files are left alone.
	Foreign
)

func (l Liveness) String() string {
	switch l {
	case Live:
		return "live"
	case Dead:
		return "dead"
	case Foreign:
		return "foreign"
	}
	return "Liveness(" + strconv.Itoa(int(l)) + ")"
}

// procRoot is where /proc is; tests point it at a fake tree.
var procRoot = "/proc"

var self = sync.OnceValues(func() (Owner, error) { return readSelf(procRoot) })

// Self is the Owner of this process. The error says why it could not be
// read in full (no /proc); the files this process makes then carry a zero
// start time and are never judged dead by anyone.
func Self() (Owner, error) { return self() }

func readSelf(proc string) (Owner, error) {
	o := Owner{PID: os.Getpid()}
	space, err := readSpace(proc)
	if err != nil {
		return o, err
	}
	o.Space = space
	if o.Boot, err = readBoot(proc); err != nil {
		return o, err
	}
	st, err := readStat(proc, o.PID)
	if err != nil {
		return o, err
	}
	o.Start = st.start
	return o, nil
}

// readSpace hashes what makes a pid meaningful: the host and the pid
// namespace it was taken in.
func readSpace(proc string) (uint32, error) {
	ns, err := os.Readlink(proc + "/self/ns/pid")
	if err != nil {
		return 0, fmt.Errorf("atomicfile: pid namespace: %w", err)
	}
	host, _ := os.Hostname()
	mid, _ := os.ReadFile("/etc/machine-id")
	h := fnv.New32a()
	fmt.Fprintf(h, "%s\x00%s\x00%s", host, strings.TrimSpace(string(mid)), ns)
	return h.Sum32(), nil
}

func readBoot(proc string) (uint32, error) {
	b, err := os.ReadFile(proc + "/sys/kernel/random/boot_id")
	if err != nil {
		return 0, fmt.Errorf("atomicfile: boot id: %w", err)
	}
	id := strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
	if len(id) < 8 {
		return 0, fmt.Errorf("atomicfile: boot id %q: too short", id)
	}
	v, err := strconv.ParseUint(id[:8], 16, 32)
	if err != nil {
		return 0, fmt.Errorf("atomicfile: boot id %q: %w", id, err)
	}
	return uint32(v), nil
}

type procStat struct {
	state byte
	start uint64
}

// readStat reads the state and start time of pid from /proc/<pid>/stat.
func readStat(proc string, pid int) (procStat, error) {
	b, err := os.ReadFile(proc + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(b))
}

// parseStat parses a /proc/<pid>/stat line. The command name (field 2) sits
// in parentheses and may hold spaces and parentheses itself, so the fields
// are counted from the last ')'.
func parseStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("atomicfile: /proc stat %q: no ')'", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("atomicfile: /proc stat %q: too few fields", s)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("atomicfile: /proc stat start time %q: %w", f[19], err)
	}
	return procStat{state: f[0][0], start: start}, nil
}

// Alive tells whether o still runs, as far as this process can tell. It
// says Dead only on proof: same pid space, and either another boot, no
// such pid, a pid with another start time (recycled) or a zombie. Any doubt
// (this process's own identity unknown, /proc unreadable) says Live.
func Alive(o Owner) Liveness {
	me, err := Self()
	return alive(procRoot, me, err == nil, o)
}

func alive(proc string, me Owner, meKnown bool, o Owner) Liveness {
	if !meKnown || o.Start == 0 {
		return Live
	}
	if o.Space != me.Space {
		return Foreign
	}
	if o.Boot != me.Boot {
		return Dead
	}
	if o.PID <= 0 {
		return Live
	}
	st, err := readStat(proc, o.PID)
	switch {
	case os.IsNotExist(err):
		return Dead
	case err != nil:
		return Live
	case st.start != o.Start:
		return Dead // the pid was recycled
	case st.state == 'Z' || st.state == 'X':
		return Dead // exited, not yet reaped
	}
	return Live
}
