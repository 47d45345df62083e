package buffers

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// What the kernel says about a mapping, from /proc/self/smaps (see proc(5)).
// This is how an arena learns what it actually got: a MAP_HUGETLB mapping
// shows KernelPageSize 2048 kB (or 1048576 kB) and its pages under
// Private_Hugetlb; transparent hugepages show under AnonHugePages, and only
// once touched.

// smapsPath is the file read back; a variable for tests.
var smapsPath = "/proc/self/smaps"

// vma is one mapping of /proc/self/smaps, sizes in bytes.
type vma struct {
	Start, End     uintptr
	KernelPageSize int64
	Rss            int64
	AnonHugePages  int64
	Locked         int64
	SharedHugetlb  int64
	PrivateHugetlb int64
	THPEligible    bool
	Flags          string // the VmFlags line: "rd wr mr mw me ac hg …"
}

// hugeBytes is what the mapping holds in huge pages of either kind.
func (v vma) hugeBytes() int64 { return v.AnonHugePages + v.SharedHugetlb + v.PrivateHugetlb }

// parseSmaps reads smaps text: a header line per mapping
// ("7f…000-7f…000 rw-p 00000000 00:00 0  [path]") followed by "Key: N kB"
// lines. Unknown keys are skipped; a malformed header or size is an error.
func parseSmaps(r io.Reader) ([]vma, error) {
	var out []vma
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		key, rest, isField := strings.Cut(text, ":")
		if isField && !strings.ContainsAny(key, " -") {
			if len(out) == 0 {
				return nil, fmt.Errorf("buffers: smaps line %d: field %q before any mapping", line, key)
			}
			v := &out[len(out)-1]
			rest = strings.TrimSpace(rest)
			switch key {
			case "VmFlags":
				v.Flags = rest
				continue
			case "THPeligible":
				v.THPEligible = rest == "1"
				continue
			}
			var dst *int64
			switch key {
			case "KernelPageSize":
				dst = &v.KernelPageSize
			case "Rss":
				dst = &v.Rss
			case "AnonHugePages":
				dst = &v.AnonHugePages
			case "Locked":
				dst = &v.Locked
			case "Shared_Hugetlb":
				dst = &v.SharedHugetlb
			case "Private_Hugetlb":
				dst = &v.PrivateHugetlb
			}
			if dst == nil {
				continue
			}
			num, unit, _ := strings.Cut(rest, " ")
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil || (unit != "kB" && unit != "") {
				return nil, fmt.Errorf("buffers: smaps line %d: %s: bad size %q", line, key, rest)
			}
			if unit == "kB" {
				n <<= 10
			}
			*dst = n
			continue
		}
		// A mapping header: "start-end perms offset dev inode [path]".
		rng, _, _ := strings.Cut(text, " ")
		lo, hi, ok := strings.Cut(rng, "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end < start {
			return nil, fmt.Errorf("buffers: smaps line %d: bad mapping header %q", line, text)
		}
		out = append(out, vma{Start: uintptr(start), End: uintptr(end)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("buffers: read smaps: %w", err)
	}
	return out, nil
}

// readSmaps parses this process's smaps.
func readSmaps() ([]vma, error) {
	f, err := os.Open(smapsPath)
	if err != nil {
		return nil, fmt.Errorf("buffers: %w", err)
	}
	defer f.Close()
	return parseSmaps(f)
}

// findVMA returns the mapping that starts at start, if any. Arena extents
// are mapped between guard pages (or are hugetlb mappings, which never
// merge), so each is a mapping of its own and starts where it was mapped.
func findVMA(vmas []vma, start uintptr) (vma, bool) {
	for _, v := range vmas {
		if v.Start == start {
			return v, true
		}
	}
	return vma{}, false
}
