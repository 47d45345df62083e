package topology

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// CPUBudget is how many CPUs this process may keep busy at once, and what
// set that number: the engine sizes `parallelism: auto` by it.
type CPUBudget struct {
	// Affinity is the number of CPUs in the process's affinity mask
	// (sched_getaffinity(2); runtime.NumCPU elsewhere).
	Affinity int
	// Quota is the cgroup CPU bandwidth limit in CPUs (quota ÷ period, the
	// smallest along the process's cgroup and its ancestors); 0 when none.
	Quota float64
	// QuotaFrom names the cgroup file the quota came from.
	QuotaFrom string
	// GOMAXPROCS is the Go runtime's limit on goroutines running at once
	// (the GOMAXPROCS environment variable or runtime.GOMAXPROCS).
	GOMAXPROCS int
	// N is the smallest of Affinity, Quota rounded up, and GOMAXPROCS; at
	// least 1.
	N int
}

// String says N and where it came from, for plans and logs, e.g. "2 CPUs
// (affinity 2, no cgroup quota, GOMAXPROCS 2)".
func (b CPUBudget) String() string {
	q := "no cgroup quota"
	if b.Quota > 0 {
		q = fmt.Sprintf("cgroup quota %s CPUs in %s", strconv.FormatFloat(b.Quota, 'f', -1, 64), b.QuotaFrom)
	}
	return fmt.Sprintf("%d %s (affinity %d, %s, GOMAXPROCS %d)", b.N, plural(b.N, "CPU", "CPUs"), b.Affinity, q, b.GOMAXPROCS)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ReadCPUBudget reads the process's CPU budget from the live system.
// What cannot be read (no cgroup file system, an unreadable file) counts
// as no limit: the budget is then the affinity mask and GOMAXPROCS.
func ReadCPUBudget() CPUBudget {
	b := CPUBudget{Affinity: processAffinity(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	if runtime.GOOS == "linux" {
		b.Quota, b.QuotaFrom = cgroupQuota("/")
	}
	return b.withN()
}

func (b CPUBudget) withN() CPUBudget {
	n := max(b.Affinity, 1)
	if b.Quota > 0 {
		n = min(n, int(math.Ceil(b.Quota)))
	}
	if b.GOMAXPROCS > 0 {
		n = min(n, b.GOMAXPROCS)
	}
	b.N = max(n, 1)
	return b
}

// cgroupQuota returns the tightest CPU bandwidth limit on the calling
// process's cgroups, in CPUs, with the file it came from; root is "/" on a
// live system (a test passes a directory laid out like one). cgroup v2
// (cpu.max) and v1 (cpu.cfs_quota_us / cpu.cfs_period_us of the cpu
// controller) are both read, the cgroup and each of its ancestors up to the
// mount's root, since a parent's limit binds its children.
func cgroupQuota(root string) (float64, string) {
	self, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, ""
	}
	mounts, err := os.ReadFile(filepath.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return 0, ""
	}
	best, from := 0.0, ""
	for _, m := range cgroupMounts(mounts) {
		path, ok := cgroupPath(self, m.v2, "cpu")
		if !ok {
			continue
		}
		rel, ok := strings.CutPrefix(path, m.root)
		if !ok || (m.root != "/" && rel != "" && !strings.HasPrefix(rel, "/")) {
			continue // the process's cgroup is outside what this mount shows
		}
		base := filepath.Join(root, m.point)
		for r := rel; ; r = filepath.Dir(r) {
			if q, f := readQuota(filepath.Join(base, r), m.v2); q > 0 && (best == 0 || q < best) {
				best, from = q, f
			}
			if r == "/" || r == "." || r == "" {
				break
			}
		}
	}
	if from != "" && root != "/" {
		from, _ = filepath.Rel(root, from)
		from = "/" + from
	}
	return best, from
}

type cgroupMount struct {
	point, root string // where it is mounted; the cgroup it shows as its root
	v2          bool
}

// cgroupMounts lists the cgroup2 mounts and the v1 mounts of the cpu
// controller in a /proc/self/mountinfo.
func cgroupMounts(mountinfo []byte) []cgroupMount {
	var out []cgroupMount
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 {
			continue
		}
		switch g[0] {
		case "cgroup2":
			out = append(out, cgroupMount{point: unescapeMount(f[4]), root: unescapeMount(f[3]), v2: true})
		case "cgroup":
			for _, o := range strings.Split(g[2], ",") {
				if o == "cpu" {
					out = append(out, cgroupMount{point: unescapeMount(f[4]), root: unescapeMount(f[3])})
				}
			}
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupPath finds the process's cgroup in /proc/self/cgroup: the v2 line
// ("0::/path") or the v1 line whose controller list holds controller.
func cgroupPath(self []byte, v2 bool, controller string) (string, bool) {
	for _, line := range strings.Split(string(self), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if v2 {
			if parts[0] == "0" && parts[1] == "" {
				return parts[2], true
			}
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return parts[2], true
			}
		}
	}
	return "", false
}

// readQuota reads one cgroup directory's CPU limit in CPUs (0: none).
func readQuota(dir string, v2 bool) (float64, string) {
	if v2 {
		f := filepath.Join(dir, "cpu.max")
		data, err := os.ReadFile(f)
		if err != nil {
			return 0, ""
		}
		fields := strings.Fields(string(data))
		if len(fields) != 2 || fields[0] == "max" {
			return 0, ""
		}
		return ratio(fields[0], fields[1]), f
	}
	qf := filepath.Join(dir, "cpu.cfs_quota_us")
	q, err1 := os.ReadFile(qf)
	p, err2 := os.ReadFile(filepath.Join(dir, "cpu.cfs_period_us"))
	if err1 != nil || err2 != nil {
		return 0, ""
	}
	return ratio(strings.TrimSpace(string(q)), strings.TrimSpace(string(p))), qf
}

// ratio is quota ÷ period, or 0 when either is not a positive integer (-1
// is v1's "no limit").
func ratio(quota, period string) float64 {
	q, err1 := strconv.ParseInt(quota, 10, 64)
	p, err2 := strconv.ParseInt(period, 10, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0
	}
	return float64(q) / float64(p)
}
