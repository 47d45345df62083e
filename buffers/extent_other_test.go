//go:build !linux

package buffers

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// Off Linux New refuses every arena with the reason, after checking cfg.
func TestNewNotLinux(t *testing.T) {
	for _, k := range []Kind{KindPlain, KindTHP, KindHugepage} {
		a, err := New(ArenaConfig{Kind: k, Node: NoNode})
		if err == nil {
			a.Close()
			t.Fatalf("New(%v) on %s: no error", k, runtime.GOOS)
		}
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "arenas need Linux") ||
			!strings.Contains(err.Error(), runtime.GOOS+"/"+runtime.GOARCH) {
			t.Errorf("New(%v): %v", k, err)
		}
	}
	if _, err := New(ArenaConfig{Kind: KindTHP, Page: Page1GiB}); err == nil || errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("New with a bad page size: %v, want the config error", err)
	}
}
