package storage

import "testing"

func TestReapAtLeast(t *testing.T) {
	for _, tc := range []struct {
		f     Facts
		depth int
		want  int
	}{
		{Facts{FSType: "tmpfs", Memory: true}, 32, 32},
		{Facts{FSType: "tmpfs", Memory: true}, 1, 1},
		{Facts{FSType: "tmpfs", Memory: true}, 0, 1},
		{Facts{FSType: "ext4", Block: true}, 32, 8},
		{Facts{FSType: "ext4", Block: true}, 3, 1},
		{Facts{FSType: "nfs"}, 16, 4},
	} {
		if got := ReapAtLeast(tc.f, tc.depth); got != tc.want {
			t.Errorf("ReapAtLeast(%s, depth %d) = %d, want %d", tc.f.FSType, tc.depth, got, tc.want)
		}
	}
}
