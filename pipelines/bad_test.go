package pipelines

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/engine"
	_ "github.com/zflowdev/zflow/operators" // the built-in operators, registered in engine.DefaultRegistry
)

var update = flag.Bool("update", false, "rewrite the golden files of TestBad")

// badEnv is the environment the bad pipelines see.
var badEnv = map[string]string{"DATA_DIR": "testdata", "ROWS": "1000", "EMPTY": ""}

// needsRE finds "# needs: filter, project" lines: the operators a case
// needs; it is skipped while they are not registered.
var needsRE = regexp.MustCompile(`(?m)^# needs: (.*)$`)

// TestBad runs every pipeline in testdata/bad through Parse and Compile
// with the built-in operators and compares the errors with the golden file
// next to it. Regenerate with: go test ./pipelines -run TestBad -update
func TestBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if m := needsRE.FindSubmatch(src); m != nil {
				for _, op := range strings.Split(string(m[1]), ",") {
					if !registered(strings.TrimSpace(op)) {
						t.Skipf("needs operator %q, not registered yet", strings.TrimSpace(op))
					}
				}
			}
			got := badErrors(src, name)
			if got == "" {
				t.Fatal("the pipeline has no error")
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./pipelines -run TestBad -update)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s\ngot:\n%swant:\n%s", golden, got, want)
			}
		})
	}
}

// badErrors parses and compiles src and renders its errors, one per line.
func badErrors(src []byte, name string) string {
	p, err := Parse(src, name, WithEnv(mapEnv(badEnv)))
	if err == nil {
		_, err = p.Compile()
	}
	if err == nil {
		return ""
	}
	var b bytes.Buffer
	b.WriteString(err.Error())
	b.WriteByte('\n')
	return b.String()
}

func registered(name string) bool {
	for _, k := range []engine.Kind{engine.KindSource, engine.KindTransform, engine.KindSink} {
		if _, err := engine.DefaultRegistry.Lookup(k, name); err == nil {
			return true
		}
	}
	return false
}
