package atomicfile

import (
	"fmt"
	"strconv"
	"strings"
)

// The files that sit next to a final name "out.parquet" while a run writes
// it are named
//
//	.out.parquet.zflow-<space>-<boot>-<pid>-<start>-<rand>.<kind>
//
// space and boot are 8 lower-case hex digits, pid and start decimal (no
// leading zeros), rand 8 lower-case hex digits that tell apart the files of
// one process; together they are the file's Tag. kind is one of:
//
//	tmp   the new contents, being written
//	prev  a hard link to the file that was under the final name before
//	      Publish; kept until Forget (the undo)
//	new   a hard link to the file Publish put under the final name; while it
//	      exists the commit is pending: Forget removes it first
//
// The grammar is strict (ParseName(FormatName(t)) == t and nothing else
// parses), so a user's file, another final name's files and the files of
// earlier zflow versions (".out.parquet.tmp-<random>") are never taken for
// ours.

// Kind is the role of a file next to a final name.
type Kind string

const (
	KindTemp Kind = "tmp"
	KindPrev Kind = "prev"
	KindNew  Kind = "new"
)

// Tag names one File: its owner and a random number.
type Tag struct {
	Owner
	Rand uint32
}

// FormatName is the name (in the final name's directory) of the kind file of
// tag for the final base name base.
func FormatName(base string, t Tag, k Kind) string {
	return fmt.Sprintf(".%s.zflow-%08x-%08x-%d-%d-%08x.%s", base, t.Space, t.Boot, t.PID, t.Start, t.Rand, k)
}

// ParseName parses name as one of our files for the final base name base.
func ParseName(base, name string) (Tag, Kind, bool) {
	rest, ok := strings.CutPrefix(name, "."+base+".zflow-")
	if !ok || base == "" {
		return Tag{}, "", false
	}
	var t Tag
	var k Kind
	var f [5]string
	for i := range f {
		sep := byte('-')
		if i == len(f)-1 {
			sep = '.'
		}
		j := strings.IndexByte(rest, sep)
		if j < 0 {
			return Tag{}, "", false
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	switch Kind(rest) {
	case KindTemp, KindPrev, KindNew:
		k = Kind(rest)
	default:
		return Tag{}, "", false
	}
	var okAll = true
	hex32 := func(s string) uint32 {
		if len(s) != 8 || strings.ToLower(s) != s {
			okAll = false
			return 0
		}
		v, err := strconv.ParseUint(s, 16, 32)
		if err != nil {
			okAll = false
		}
		return uint32(v)
	}
	dec := func(s string, bits int) uint64 {
		if s == "" || (len(s) > 1 && s[0] == '0') || s[0] == '+' || s[0] == '-' {
			okAll = false
			return 0
		}
		v, err := strconv.ParseUint(s, 10, bits)
		if err != nil {
			okAll = false
		}
		return v
	}
	t.Space = hex32(f[0])
	t.Boot = hex32(f[1])
	t.PID = int(dec(f[2], 31))
	t.Start = dec(f[3], 64)
	t.Rand = hex32(f[4])
	if !okAll {
		return Tag{}, "", false
	}
	return t, k, true
}
