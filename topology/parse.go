package topology

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxCPU bounds the CPU numbers the parsers accept. The kernel's NR_CPUS is
// at most 8192 today; the bound keeps a malformed "0-4000000000" from
// allocating gigabytes.
const MaxCPU = 1 << 16

// ParseCPUList parses the kernel's CPU list format ("0-3,8-11", "5", "" for
// none), as in nodeN/cpulist and cpu/online. Ranges must be ascending and
// must not overlap, as the kernel prints them. The caller owns the result.
func ParseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return []int{}, nil
	}
	var cpus []int
	next := 0 // the smallest CPU the next range may start at
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parseCPU(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = parseCPU(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", s, err)
			}
			if b < a {
				return nil, fmt.Errorf("cpu list %q: range %q runs backwards", s, part)
			}
		}
		if a < next {
			return nil, fmt.Errorf("cpu list %q: %q is not ascending", s, part)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
		next = b + 1
	}
	return cpus, nil
}

func parseCPU(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("bad cpu number %q", s)
	}
	if n >= MaxCPU {
		return 0, fmt.Errorf("cpu %d out of range (max %d)", n, MaxCPU-1)
	}
	return n, nil
}

// FormatCPUList prints CPUs in the kernel's range form: [0 1 2 3 8] is
// "0-3,8". The input need not be sorted; duplicates are printed once. An
// empty list is "".
func FormatCPUList(cpus []int) string {
	if len(cpus) == 0 {
		return ""
	}
	s := append([]int(nil), cpus...)
	sortInts(s)
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && (s[j+1] == s[j]+1 || s[j+1] == s[j]) {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s[i]))
		if s[j] != s[i] {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(s[j]))
		}
		i = j + 1
	}
	return b.String()
}

func sortInts(s []int) {
	// insertion sort: CPU lists are short and usually sorted already.
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// meminfo is the part of a meminfo file (nodeN/meminfo or /proc/meminfo)
// that placement uses, in bytes.
type meminfo struct {
	MemTotal, MemFree int64
}

// parseMeminfo parses nodeN/meminfo ("Node 0 MemTotal:  10970912 kB") or
// /proc/meminfo ("MemTotal:  24683620 kB"). Every line must be "key: number"
// with an optional "kB"; MemTotal and MemFree must be present.
func parseMeminfo(data []byte) (meminfo, error) {
	var mi meminfo
	var haveTotal, haveFree bool
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		key, val, ok := strings.Cut(text, ":")
		if !ok {
			return meminfo{}, fmt.Errorf("meminfo line %d: no ':' in %q", line, text)
		}
		if rest, ok := strings.CutPrefix(key, "Node "); ok {
			// "Node 0 MemTotal": drop the node number.
			num, name, ok := strings.Cut(rest, " ")
			if _, err := strconv.ParseUint(num, 10, 31); !ok || err != nil {
				return meminfo{}, fmt.Errorf("meminfo line %d: bad node prefix in %q", line, text)
			}
			key = name
		}
		key = strings.TrimSpace(key)
		f := strings.Fields(val)
		unit := int64(1)
		switch {
		case len(f) == 2 && f[1] == "kB":
			unit = 1024
		case len(f) == 1:
		default:
			return meminfo{}, fmt.Errorf("meminfo line %d: want \"key: number [kB]\", got %q", line, text)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return meminfo{}, fmt.Errorf("meminfo line %d: bad number %q", line, f[0])
		}
		if n > math.MaxInt64/unit {
			return meminfo{}, fmt.Errorf("meminfo line %d: %s kB overflows", line, f[0])
		}
		switch key {
		case "MemTotal":
			mi.MemTotal, haveTotal = n*unit, true
		case "MemFree":
			mi.MemFree, haveFree = n*unit, true
		}
	}
	if err := sc.Err(); err != nil {
		return meminfo{}, fmt.Errorf("meminfo: %w", err)
	}
	if !haveTotal || !haveFree {
		return meminfo{}, errors.New("meminfo: no MemTotal or no MemFree line")
	}
	return mi, nil
}

// parseInts parses space-separated integers (nodeN/distance).
func parseInts(s string) ([]int, error) {
	f := strings.Fields(s)
	out := make([]int, 0, len(f))
	for _, v := range f {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("bad number %q", v)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseBracketed returns the [selected] word of a sysfs choice file such as
// transparent_hugepage/enabled ("always [madvise] never").
func parseBracketed(s string) (string, error) {
	for w := range strings.FieldsSeq(s) {
		if len(w) > 2 && w[0] == '[' && w[len(w)-1] == ']' {
			return w[1 : len(w)-1], nil
		}
	}
	return "", fmt.Errorf("no [selected] value in %q", strings.TrimSpace(s))
}

// parseHugepageDir returns the page size in bytes of a "hugepages-2048kB"
// directory name.
func parseHugepageDir(name string) (int64, bool) {
	s, ok := strings.CutPrefix(name, "hugepages-")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "kB")
	if !ok {
		return 0, false
	}
	kb, err := strconv.ParseInt(s, 10, 64)
	if err != nil || kb <= 0 || kb > math.MaxInt64/1024 {
		return 0, false
	}
	return kb * 1024, true
}

// Limit is a resource limit in bytes; Unlimited stands for "unlimited".
type Limit struct {
	Soft int64 `json:"soft"`
	Hard int64 `json:"hard"`
}

// Unlimited is the value of a Limit that has no bound.
const Unlimited = -1

// parseLimit finds the line of /proc/self/limits that starts with name
// ("Max locked memory") and returns its soft and hard values.
func parseLimit(data []byte, name string) (Limit, error) {
	for line := range strings.SplitSeq(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return Limit{}, fmt.Errorf("limits: short line %q", line)
		}
		var l Limit
		for i, p := range []*int64{&l.Soft, &l.Hard} {
			if f[i] == "unlimited" {
				*p = Unlimited
				continue
			}
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil || n < 0 {
				return Limit{}, fmt.Errorf("limits: bad value %q in %q", f[i], line)
			}
			*p = n
		}
		return l, nil
	}
	return Limit{}, fmt.Errorf("limits: no %q line", name)
}

// capIPCLock is the bit of CAP_IPC_LOCK in the capability masks of
// /proc/self/status (include/uapi/linux/capability.h).
const capIPCLock = 14

// parseCapEff reports whether the CapEff line of /proc/self/status holds
// CAP_IPC_LOCK.
func parseCapEff(data []byte) (bool, error) {
	for line := range strings.SplitSeq(string(data), "\n") {
		v, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return false, fmt.Errorf("status: bad CapEff %q", strings.TrimSpace(v))
		}
		return n&(1<<capIPCLock) != 0, nil
	}
	return false, errors.New("status: no CapEff line")
}
