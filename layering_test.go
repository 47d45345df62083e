package zflow_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLayering checks DESIGN.md's "who may import whom": arrows point down
// the package table, never up. Test files are included (a test may not reach
// up either), except where noted.
func TestLayering(t *testing.T) {
	const mod = "github.com/zflowdev/zflow"
	// For each folder, the zflow packages it must not import (prefixes).
	forbidden := map[string][]string{
		"engine":    {"/pipelines", "/operators", "/cmd", "/bench", "/io", "/nvmeof", "/cxl"},
		"pipelines": {"/operators", "/cmd", "/bench"},
		"operators": {"/pipelines", "/cmd", "/bench"},
		"buffers":   {"/engine", "/pipelines", "/operators", "/cmd", "/bench"},
		"topology":  {"/engine", "/pipelines", "/operators", "/cmd", "/bench", "/buffers"},
		"internal":  {"/engine", "/pipelines", "/operators", "/cmd", "/bench"},
		"telemetry": {"/engine", "/pipelines", "/operators", "/cmd", "/bench", "/buffers", "/topology", "/io", "/nvmeof", "/cxl"},
	}
	// Tests of pipelines may load the real operators to check real messages.
	testOK := map[string]bool{"pipelines:/operators": true}
	fset := token.NewFileSet()
	for dir, bad := range forbidden {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.Contains(path, "testdata") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, imp := range f.Imports {
				p := strings.Trim(imp.Path.Value, `"`)
				if !strings.HasPrefix(p, mod) {
					continue
				}
				rel := strings.TrimPrefix(p, mod)
				for _, b := range bad {
					if rel == b || strings.HasPrefix(rel, b+"/") {
						if strings.HasSuffix(path, "_test.go") && testOK[dir+":"+b] {
							continue
						}
						t.Errorf("%s imports %s: %s may not import %s (DESIGN.md)", path, p, dir, b)
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
