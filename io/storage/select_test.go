package storage

import (
	"errors"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	refused := errors.New("uring: io_uring is disabled for every process (io_uring_disabled = 2)")
	all := func(string) error { return nil }
	noUring := func(n string) error {
		if n == "uring" {
			return refused
		}
		return nil
	}
	tmpfs := Facts{GOOS: "linux", FSType: "tmpfs", Memory: true}
	disk := Facts{GOOS: "linux", FSType: "ext4", Block: true, Device: "vda", DeviceDepth: 256, LogicalBlock: 512}
	tests := []struct {
		name   string
		kind   string
		facts  Facts
		opts   Options
		avail  func(string) error
		want   string
		reason string // substring
		direct bool
		err    string
	}{
		{"tmpfs small reads", "auto", tmpfs, Options{}, all, "posix", "io-wq", false, ""},
		{"tmpfs whole file", "", tmpfs, Options{WholeFile: true}, all, "mmap", "read whole", false, ""},
		{"tmpfs whole file, mapping measured slower", "auto", Facts{GOOS: "linux", FSType: "tmpfs", Memory: true, MapSlower: "mapping a page in costs more than copying it on this machine (…)"}, Options{WholeFile: true}, all, "posix", "costs more than copying it on this machine (…): pread, the kernel copies each page into the batch's buffer once", false, ""},
		{"tmpfs whole file written", "auto", tmpfs, Options{WholeFile: true, Write: true}, all, "posix", "in memory", false, ""},
		{"mmap write", "mmap", tmpfs, Options{Write: true}, all, "", "", false, "mmap only reads"},
		{"tmpfs direct dropped", "auto", tmpfs, Options{Direct: true}, all, "posix", "direct: true dropped", false, ""},
		{"disk deep queue", "auto", disk, Options{QueueDepth: 32}, all, "uring", "block device", false, ""},
		{"disk default depth", "auto", disk, Options{}, all, "uring", "queue_depth 32", false, ""},
		{"disk direct kept", "auto", disk, Options{Direct: true}, all, "uring", "vda", true, ""},
		{"disk depth 1", "auto", disk, Options{QueueDepth: 1}, all, "posix", "queue_depth 1", false, ""},
		{"device depth 1", "auto", Facts{GOOS: "linux", FSType: "ext4", Block: true, Device: "sda", DeviceDepth: 1}, Options{}, all, "posix", "one request at a time", false, ""},
		{"uring refused falls back", "auto", disk, Options{}, noUring, "posix", "io_uring_disabled = 2", false, ""},
		{"nfs", "auto", Facts{GOOS: "linux", FSType: "nfs4"}, Options{}, all, "posix", "not a local block device", false, ""},
		{"darwin", "auto", Facts{GOOS: "darwin"}, Options{}, all, "posix", "only posix exists on darwin", false, ""},
		{"explicit posix", "posix", tmpfs, Options{}, all, "posix", "asked for", false, ""},
		{"explicit uring refused", "uring", disk, Options{}, noUring, "", "", false, "io_uring_disabled = 2"},
		{"explicit uring not linked", "uring", disk, Options{}, func(string) error { return errNotLinked }, "", "", false, "not linked"},
		{"mmap direct", "mmap", disk, Options{Direct: true}, all, "", "", false, "direct"},
		{"unknown", "aio", disk, Options{}, all, "", "", false, `unknown io kind "aio"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name, reason, o, err := Decide(tc.kind, tc.facts, tc.opts, tc.avail)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if name != tc.want || !strings.Contains(reason, tc.reason) || o.Direct != tc.direct {
				t.Errorf("got %s (%q, direct %v), want %s with %q, direct %v", name, reason, o.Direct, tc.want, tc.reason, tc.direct)
			}
		})
	}
}

func TestCheckAligned(t *testing.T) {
	buf := make([]byte, 8192+4096)
	a := int(addr(buf) % 4096)
	aligned := buf[(4096-a)%4096:]
	tests := []struct {
		buf  []byte
		off  int64
		want string
	}{
		{aligned[:4096], 4096, ""},
		{aligned[:4096], 100, "offset is not a multiple of 4096"},
		{aligned[:100], 0, "length is not a multiple"},
		{aligned[1:4097], 0, "buffer address"},
	}
	for _, tc := range tests {
		err := CheckAligned("x", "f", tc.buf, tc.off, 4096)
		if (err == nil) != (tc.want == "") || (err != nil && (!strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrUnaligned))) {
			t.Errorf("CheckAligned(len %d, off %d): %v, want %q", len(tc.buf), tc.off, err, tc.want)
		}
	}
}
