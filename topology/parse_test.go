package topology

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  string
	}{
		{in: "", want: []int{}},
		{in: "\n", want: []int{}},
		{in: "0", want: []int{0}},
		{in: "0-3\n", want: []int{0, 1, 2, 3}},
		{in: "0-1,4,6-7", want: []int{0, 1, 4, 6, 7}},
		{in: "0-7,16-23", want: []int{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}},
		{in: "5-5", want: []int{5}},
		{in: "a", err: `bad cpu number "a"`},
		{in: "1,", err: `bad cpu number ""`},
		{in: ",1", err: `bad cpu number ""`},
		{in: "-1", err: `bad cpu number ""`},
		{in: "1--3", err: `bad cpu number "-3"`},
		{in: "+1", err: `bad cpu number "+1"`},
		{in: "0-3-5", err: `bad cpu number "3-5"`},
		{in: "3-1", err: "runs backwards"},
		{in: "4,2", err: "not ascending"},
		{in: "0-3,2-5", err: "not ascending"},
		{in: "0 - 3", err: "bad cpu number"},
		{in: "65536", err: "out of range"},
		{in: "0-4000000000", err: "out of range"},
		{in: "99999999999999999999", err: "bad cpu number"},
	} {
		got, err := ParseCPUList(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseCPUList(%q) = %v, %v; want error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestFormatCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{3}, "3"},
		{[]int{0, 1, 2, 3, 8, 9, 10, 11}, "0-3,8-11"},
		{[]int{0, 2, 4}, "0,2,4"},
		{[]int{3, 1, 2, 2, 0}, "0-3"},
		{[]int{7, 6, 1}, "1,6-7"},
	} {
		if got := FormatCPUList(tc.in); got != tc.want {
			t.Errorf("FormatCPUList(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     meminfo
		err      string
	}{
		{"node", "Node 0 MemTotal:       10970912 kB\nNode 0 MemFree:         6736732 kB\nNode 0 HugePages_Total:     0\n",
			meminfo{10970912 << 10, 6736732 << 10}, ""},
		{"proc", "MemTotal:       24683620 kB\nMemFree:        20000000 kB\nHugePages_Total:       0\n",
			meminfo{24683620 << 10, 20000000 << 10}, ""},
		{"node 12, blank lines", "\nNode 12 MemFree: 1 kB\n\nNode 12 MemTotal: 2 kB\n", meminfo{2 << 10, 1 << 10}, ""},
		{"no unit", "MemTotal: 5\nMemFree: 4\n", meminfo{5, 4}, ""},
		{"empty", "", meminfo{}, "no MemTotal"},
		{"no free", "MemTotal: 5 kB\n", meminfo{}, "no MemFree"},
		{"no colon", "MemTotal 5 kB\n", meminfo{}, "line 1: no ':'"},
		{"bad number", "MemTotal: 5x kB\n", meminfo{}, `line 1: bad number "5x"`},
		{"negative", "MemTotal: -5 kB\n", meminfo{}, `bad number "-5"`},
		{"bad unit", "MemTotal: 5 MB\n", meminfo{}, "want \"key: number [kB]\""},
		{"no value", "MemTotal:\n", meminfo{}, "want \"key: number [kB]\""},
		{"bad node", "Node x MemTotal: 5 kB\n", meminfo{}, "bad node prefix"},
		{"overflow", "MemTotal: 9223372036854775807 kB\n", meminfo{}, "overflows"},
		{"line number", "MemTotal: 1 kB\nMemFree: 1 kB\ngarbage\n", meminfo{}, "line 3"},
	} {
		got, err := parseMeminfo([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %v, %v; want error with %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestParseSmall(t *testing.T) {
	if v, err := parseBracketed("always [madvise] never\n"); v != "madvise" || err != nil {
		t.Errorf("parseBracketed: %q %v", v, err)
	}
	if _, err := parseBracketed("always madvise never"); err == nil {
		t.Error("parseBracketed: no error without brackets")
	}
	for name, want := range map[string]int64{"hugepages-2048kB": 2 << 20, "hugepages-1048576kB": 1 << 30, "hugepages-64kB": 64 << 10,
		"hugepages-kB": 0, "hugepages-2048": 0, "foo": 0, "hugepages--5kB": 0, "hugepages-99999999999999999kB": 0} {
		got, ok := parseHugepageDir(name)
		if got != want || ok != (want != 0) {
			t.Errorf("parseHugepageDir(%q) = %d, %v", name, got, ok)
		}
	}
	limits := "Limit  Soft Limit  Hard Limit  Units\nMax locked memory         8388608              unlimited            bytes\n"
	if l, err := parseLimit([]byte(limits), "Max locked memory"); err != nil || l != (Limit{8 << 20, Unlimited}) {
		t.Errorf("parseLimit: %+v %v", l, err)
	}
	if _, err := parseLimit([]byte("Max locked memory\n"), "Max locked memory"); err == nil {
		t.Error("parseLimit: short line accepted")
	}
	if _, err := parseLimit([]byte("Max open files 1 1\n"), "Max locked memory"); err == nil {
		t.Error("parseLimit: missing line accepted")
	}
	for in, want := range map[string]bool{"CapEff:\t000001fffeffffff\n": true, "Name: x\nCapEff:\t0000000000000000\n": false, "CapEff:\t0000000000004000": true} {
		if got, err := parseCapEff([]byte(in)); got != want || err != nil {
			t.Errorf("parseCapEff(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := parseCapEff([]byte("Name: x\n")); err == nil {
		t.Error("parseCapEff: missing line accepted")
	}
	if got, err := parseInts(" 10 21\n"); err != nil || !reflect.DeepEqual(got, []int{10, 21}) {
		t.Errorf("parseInts: %v %v", got, err)
	}
}

func TestNVMeNamespaceName(t *testing.T) {
	for in, want := range map[string]string{
		"nvme0n1": "nvme0n1", "nvme12n3": "nvme12n3", "nvme0c1n1": "nvme0n1", "nvme1c2n2": "nvme1n2",
		"nvme0": "", "nvme0n": "", "nvme0c1": "", "nvmeXn1": "", "nvme0cXn1": "", "nvme0n1p1": "", "ng0n1": "", "nvme0c1n1x": "",
	} {
		got, ok := nvmeNamespaceName(in)
		if got != want || ok != (want != "") {
			t.Errorf("nvmeNamespaceName(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestNatLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{
		{"nvme2", "nvme10", true}, {"nvme10", "nvme2", false}, {"dax0.0", "dax0.1", true}, {"eth0", "eth0", false},
		{"eno1", "ens801f0", true}, {"lo", "eth0", false}, {"nvme1", "nvme1n1", true},
	} {
		if got := natLess(tc.a, tc.b); got != tc.less {
			t.Errorf("natLess(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

// FuzzParseCPUList: never panics; what parses is ascending, in range, and
// prints back (FormatCPUList) to a list that parses to the same CPUs.
func FuzzParseCPUList(f *testing.F) {
	for _, s := range []string{"0-3,8-11", "0", "", "0-1,4,6-7\n", "3-1", "1,,2", "65535", "0-65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cpus, err := ParseCPUList(s)
		if err != nil {
			return
		}
		for i, c := range cpus {
			if c < 0 || c >= MaxCPU || i > 0 && c <= cpus[i-1] {
				t.Fatalf("ParseCPUList(%q) = %v: not ascending or out of range", s, cpus)
			}
		}
		back, err := ParseCPUList(FormatCPUList(cpus))
		if err != nil || !reflect.DeepEqual(back, cpus) {
			t.Fatalf("ParseCPUList(%q) = %v, formatted %q parses to %v, %v", s, cpus, FormatCPUList(cpus), back, err)
		}
	})
}

// FuzzParseMeminfo: never panics; what parses has sizes that are not
// negative.
func FuzzParseMeminfo(f *testing.F) {
	for _, s := range []string{
		"Node 0 MemTotal:       10970912 kB\nNode 0 MemFree:         6736732 kB\nNode 0 HugePages_Total:     0\n",
		"MemTotal: 5\nMemFree: 4\n",
		"Node x MemTotal: 5 kB\n",
		"MemTotal: 9223372036854775807 kB\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mi, err := parseMeminfo(data)
		if err == nil && (mi.MemTotal < 0 || mi.MemFree < 0) {
			t.Fatalf("parseMeminfo(%q) = %+v", data, mi)
		}
	})
}
