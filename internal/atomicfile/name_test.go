package atomicfile

import (
	"testing"
)

func TestFormatParseName(t *testing.T) {
	tag := Tag{Owner: Owner{Space: 0xdeadbeef, Boot: 0x0123abcd, PID: 4242, Start: 987654}, Rand: 0x0000ff01}
	for _, k := range []Kind{KindTemp, KindPrev, KindNew} {
		name := FormatName("out.parquet", tag, k)
		got, gk, ok := ParseName("out.parquet", name)
		if !ok || got != tag || gk != k {
			t.Errorf("ParseName(%q) = %+v %q %v", name, got, gk, ok)
		}
	}
	if got := FormatName("out.parquet", tag, KindTemp); got != ".out.parquet.zflow-deadbeef-0123abcd-4242-987654-0000ff01.tmp" {
		t.Errorf("FormatName = %q", got)
	}
}

func TestParseName(t *testing.T) {
	const good = ".out.csv.zflow-deadbeef-0123abcd-4242-987654-0000ff01.tmp"
	tests := []struct {
		base, name string
		ok         bool
		kind       Kind
	}{
		{"out.csv", good, true, KindTemp},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-4242-987654-0000ff01.prev", true, KindPrev},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-4242-987654-0000ff01.new", true, KindNew},
		{"out.csv", ".out.csv.zflow-00000000-00000000-1-1-00000000.tmp", true, KindTemp},
		// Another final name's files.
		{"out.cs", good, false, ""},
		{"out.csv2", good, false, ""},
		{"ut.csv", good, false, ""},
		{"", good, false, ""},
		// The files of a final name that looks like one of ours.
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-4242-987654-0000ff01.tmp.zflow-deadbeef-0123abcd-4242-987654-0000ff01.tmp", false, ""},
		// Earlier zflow versions and users' files.
		{"out.csv", ".out.csv.tmp-123456", false, ""},
		{"out.csv", "out.csv", false, ""},
		{"out.csv", ".out.csv.zflow-", false, ""},
		{"out.csv", ".out.csv.zflow-notes.txt", false, ""},
		// Bad kinds.
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-4242-987654-0000ff01.old", false, ""},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-4242-987654-0000ff01.", false, ""},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-4242-987654-0000ff01", false, ""},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-4242-987654-0000ff01.TMP", false, ""},
		// Bad fields: hex width and case, leading zeros, signs, overflow.
		{"out.csv", ".out.csv.zflow-deadbee-0123abcd-4242-987654-0000ff01.tmp", false, ""},
		{"out.csv", ".out.csv.zflow-DEADBEEF-0123abcd-4242-987654-0000ff01.tmp", false, ""},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-04242-987654-0000ff01.tmp", false, ""},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-+4242-987654-0000ff01.tmp", false, ""},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd--4242-987654-0000ff01.tmp", false, ""},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-4242--987654-0000ff01.tmp", false, ""},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-4242-987654-ff01.tmp", false, ""},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-4242-987654-0000ff0g.tmp", false, ""},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-99999999999-987654-0000ff01.tmp", false, ""},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-4242-99999999999999999999999-0000ff01.tmp", false, ""},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-4242-987654-0000ff01-1.tmp", false, ""},
		{"out.csv", ".out.csv.zflow-deadbeef-0123abcd-4242-0x10-0000ff01.tmp", false, ""},
	}
	for _, tc := range tests {
		_, k, ok := ParseName(tc.base, tc.name)
		if ok != tc.ok || k != tc.kind {
			t.Errorf("ParseName(%q, %q) = %q %v, want %q %v", tc.base, tc.name, k, ok, tc.kind, tc.ok)
		}
	}
}

// FuzzParseName: whatever parses formats back to the same name, so no two
// names parse to the same file and nothing else is taken for ours.
func FuzzParseName(f *testing.F) {
	f.Add("out.parquet", ".out.parquet.zflow-deadbeef-0123abcd-4242-987654-0000ff01.tmp")
	f.Add("a", ".a.zflow-00000000-00000000-1-1-00000000.new")
	f.Add("out.csv", ".out.csv.tmp-123456")
	f.Fuzz(func(t *testing.T, base, name string) {
		tag, k, ok := ParseName(base, name)
		if !ok {
			return
		}
		if got := FormatName(base, tag, k); got != name {
			t.Fatalf("ParseName(%q, %q) = %+v %q, formats back as %q", base, name, tag, k, got)
		}
	})
}
