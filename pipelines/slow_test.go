package pipelines

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSlowCorpus(t *testing.T) {
	dir := os.Getenv("CORPUS")
	if dir == "" {
		t.Skip()
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	reg := newTestRegistry()
	for _, f := range files {
		b, _ := os.ReadFile(f)
		lines := strings.SplitN(string(b), "\n", 3)
		lit := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(lines[1]), "[]byte("), ")")
		s, err := strconv.Unquote(lit)
		if err != nil {
			t.Logf("%s: %v", f, err)
			continue
		}
		start := time.Now()
		p, err := Parse([]byte(s), "f.yaml", WithRegistry(reg), WithEnv(mapEnv(nil)))
		if err == nil {
			p.Compile()
		}
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Logf("%s: %v (%d bytes) %q", filepath.Base(f), d, len(s), s[:min(len(s), 300)])
		}
	}
}
