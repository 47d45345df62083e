package buffers

import (
	"testing"
	"unsafe"
)

// TestLayout: the structures written by different goroutines on the hot
// path fill whole cache lines, so that neighbours do not share one.
func TestLayout(t *testing.T) {
	if s := unsafe.Sizeof(shard{}); s%64 != 0 {
		t.Errorf("shard is %d bytes, not a multiple of 64", s)
	}
	if s := unsafe.Sizeof(lane{}); s%64 != 0 {
		t.Errorf("lane is %d bytes, not a multiple of 64", s)
	}
	var l lane
	if a, f := unsafe.Offsetof(l.alloc), unsafe.Offsetof(l.freed); f-a < 64 {
		t.Errorf("a lane's allocated and freed counts are %d bytes apart", f-a)
	}
}
