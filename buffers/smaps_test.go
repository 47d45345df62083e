//go:build linux

package buffers

import (
	"os"
	"strings"
	"testing"
)

func TestParseSmaps(t *testing.T) {
	f, err := os.Open("testdata/smaps.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vmas, err := parseSmaps(f)
	if err != nil {
		t.Fatalf("parseSmaps: %v", err)
	}
	want := []vma{
		{Start: 0x400000, End: 0xc5a000, KernelPageSize: 4 << 10, Rss: 4100 << 10, Flags: "rd ex mr mw me"},
		{Start: 0x7f2a00000000, End: 0x7f2a04000000, KernelPageSize: 2 << 20, PrivateHugetlb: 64 << 20, Flags: "rd wr mr mw me de ht"},
		{Start: 0x7f2a04000000, End: 0x7f2a08000000, KernelPageSize: 4 << 10, Rss: 64 << 20, AnonHugePages: 62 << 20,
			Locked: 64 << 20, THPEligible: true, Flags: "rd wr mr mw me lo ac hg"},
	}
	if len(vmas) != len(want) {
		t.Fatalf("parsed %d mappings, want %d: %+v", len(vmas), len(want), vmas)
	}
	for i := range want {
		if vmas[i] != want[i] {
			t.Errorf("mapping %d:\n got %+v\nwant %+v", i, vmas[i], want[i])
		}
	}
	if v, ok := findVMA(vmas, 0x7f2a00000000); !ok || v.hugeBytes() != 64<<20 {
		t.Errorf("findVMA hugetlb: %+v, %v", v, ok)
	}
	if _, ok := findVMA(vmas, 0x7f2a00001000); ok {
		t.Error("findVMA found a mapping that does not start there")
	}
}

func TestParseSmapsErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Rss: 4 kB\n", "field \"Rss\" before any mapping"},
		{"zz-10 rw-p 0 0 0\n", "bad mapping header"},
		{"1000-2000 rw-p 0 00:00 0\nRss: x kB\n", "line 2: Rss: bad size"},
		{"2000-1000 rw-p 0 00:00 0\n", "bad mapping header"},
	} {
		_, err := parseSmaps(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseSmaps(%q): %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestReadSmapsSelf: this process's own smaps parses, and a mapping made
// here is found with its size.
func TestReadSmapsSelf(t *testing.T) {
	a, _ := newTest(t, plainCfg())
	vmas, err := readSmaps()
	if err != nil {
		t.Fatalf("readSmaps: %v", err)
	}
	for _, e := range *a.exts.Load() {
		v, ok := findVMA(vmas, e.base)
		if !ok {
			t.Fatalf("extent %#x not in /proc/self/smaps", e.base)
		}
		if v.End-v.Start != e.end-e.base {
			t.Errorf("extent %#x: smaps mapping is %d bytes, extent %d (merged with a neighbour?)", e.base, v.End-v.Start, e.end-e.base)
		}
	}
}
