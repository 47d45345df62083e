package topology

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeRoot lays out files under a temporary directory as a live system
// would have them.
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const (
	mountsV2 = "30 22 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
	mountsV1 = "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
		"31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n" +
		"34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
)

func TestCgroupQuota(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  float64
		from  string
	}{
		{"v2 limited", map[string]string{
			"proc/self/cgroup":                       "0::/kubepods/pod1/c1\n",
			"proc/self/mountinfo":                    mountsV2,
			"sys/fs/cgroup/kubepods/pod1/c1/cpu.max": "150000 100000\n",
		}, 1.5, "/sys/fs/cgroup/kubepods/pod1/c1/cpu.max"},
		{"v2 max, parent limited", map[string]string{
			"proc/self/cgroup":                       "0::/kubepods/pod1/c1\n",
			"proc/self/mountinfo":                    mountsV2,
			"sys/fs/cgroup/kubepods/pod1/c1/cpu.max": "max 100000\n",
			"sys/fs/cgroup/kubepods/pod1/cpu.max":    "300000 100000\n",
			"sys/fs/cgroup/kubepods/cpu.max":         "800000 100000\n",
		}, 3, "/sys/fs/cgroup/kubepods/pod1/cpu.max"},
		{"v2 none", map[string]string{
			"proc/self/cgroup":      "0::/\n",
			"proc/self/mountinfo":   mountsV2,
			"sys/fs/cgroup/cpu.max": "max 100000\n",
		}, 0, ""},
		{"v1 limited", map[string]string{
			"proc/self/cgroup":    "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n",
			"proc/self/mountinfo": mountsV1,
			"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us":  "50000\n",
			"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
		}, 0.5, "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us"},
		{"v1 unlimited", map[string]string{
			"proc/self/cgroup":                            "2:cpu,cpuacct:/\n",
			"proc/self/mountinfo":                         mountsV1,
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  "-1\n",
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
		}, 0, ""},
		{"no cgroup files", map[string]string{}, 0, ""},
		{"garbage", map[string]string{
			"proc/self/cgroup":        "0::/a\n",
			"proc/self/mountinfo":     mountsV2 + "nonsense\n",
			"sys/fs/cgroup/a/cpu.max": "lots 0\n",
		}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, from := cgroupQuota(fakeRoot(t, tc.files))
			if got != tc.want || from != tc.from {
				t.Errorf("quota %v from %q, want %v from %q", got, from, tc.want, tc.from)
			}
		})
	}
}

func TestCPUBudgetN(t *testing.T) {
	for _, tc := range []struct {
		b    CPUBudget
		want int
	}{
		{CPUBudget{Affinity: 8, GOMAXPROCS: 8}, 8},
		{CPUBudget{Affinity: 8, Quota: 1.5, GOMAXPROCS: 8}, 2},
		{CPUBudget{Affinity: 8, Quota: 0.2, GOMAXPROCS: 8}, 1},
		{CPUBudget{Affinity: 4, GOMAXPROCS: 2}, 2},
		{CPUBudget{Affinity: 0, GOMAXPROCS: 0}, 1},
	} {
		if got := tc.b.withN(); got.N != tc.want {
			t.Errorf("%+v: N %d, want %d", tc.b, got.N, tc.want)
		}
	}
	s := CPUBudget{Affinity: 8, Quota: 1.5, QuotaFrom: "/sys/fs/cgroup/x/cpu.max", GOMAXPROCS: 8}.withN().String()
	if !strings.Contains(s, "2 CPUs") || !strings.Contains(s, "quota 1.5 CPUs in /sys/fs/cgroup/x/cpu.max") {
		t.Errorf("String: %s", s)
	}
}

func TestReadCPUBudget(t *testing.T) {
	b := ReadCPUBudget()
	if b.N < 1 || b.N > runtime.NumCPU() || b.GOMAXPROCS != runtime.GOMAXPROCS(0) || b.Affinity < 1 {
		t.Fatalf("%+v (NumCPU %d)", b, runtime.NumCPU())
	}
	t.Log(b)
}
