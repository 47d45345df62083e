package zflow_test

import (
	"bufio"
	"bytes"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// archDoc holds the import table between layeringBegin and layeringEnd; the
// test reads its rules from there, so the document and the check cannot
// drift apart.
const (
	archDoc       = "docs/ARCHITECTURE.md"
	layeringBegin = "<!-- layering:begin -->"
	layeringEnd   = "<!-- layering:end -->"
	modulePath    = "github.com/zflowdev/zflow"
)

// layer is one row of the import table.
type layer struct {
	folder   string          // "." for the root package
	all      bool            // "everything"
	may      map[string]bool // folders it may import
	testsMay map[string]bool // folders its _test.go files may also import
	line     int             // in archDoc
}

var backticked = regexp.MustCompile("`([^`]+)`")

// parseLayers reads the rows of the import table in doc.
func parseLayers(doc []byte) ([]*layer, error) {
	var out []*layer
	in := false
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == layeringBegin:
			in = true
			continue
		case line == layeringEnd:
			if len(out) == 0 {
				return nil, fmt.Errorf("%s:%d: the import table has no rows", archDoc, n)
			}
			return out, nil
		}
		if !in || !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 4 {
			return nil, fmt.Errorf("%s:%d: want 4 cells (folder | holds | may import | tests may also import), got %d", archDoc, n, len(cells))
		}
		m := backticked.FindStringSubmatch(cells[0])
		if m == nil {
			continue // the header and the --- row
		}
		l := &layer{folder: cleanFolder(m[1]), line: n, may: folders(cells[2]), testsMay: folders(cells[3])}
		l.all = strings.Contains(cells[2], "everything")
		if !l.all && len(l.may) == 0 && !strings.Contains(cells[2], "nothing of ours") {
			return nil, fmt.Errorf("%s:%d: %q: the may-import cell names no folder; write \"nothing of ours\" or \"everything\"", archDoc, n, l.folder)
		}
		out = append(out, l)
	}
	if in {
		return nil, fmt.Errorf("%s: %s without %s", archDoc, layeringBegin, layeringEnd)
	}
	return nil, fmt.Errorf("%s: no import table (%s ... %s)", archDoc, layeringBegin, layeringEnd)
}

func cleanFolder(s string) string {
	s = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "/*"), "/")
	if s == "" {
		return "."
	}
	return s
}

func folders(cell string) map[string]bool {
	m := map[string]bool{}
	for _, b := range backticked.FindAllStringSubmatch(cell, -1) {
		m[cleanFolder(b[1])] = true
	}
	return m
}

// layerOf finds the row that covers package directory dir: the longest
// folder that is dir or a parent of it ("." covers only the root itself).
func layerOf(layers []*layer, dir string) *layer {
	var best *layer
	for _, l := range layers {
		if dir == l.folder || (l.folder != "." && strings.HasPrefix(dir, l.folder+"/")) {
			if best == nil || len(l.folder) > len(best.folder) {
				best = l
			}
		}
	}
	return best
}

// allowed tells whether a file of row from (a test file if test) may import
// the package in directory to.
func allowed(layers []*layer, from *layer, to string, test bool) bool {
	if from.all {
		return true
	}
	tl := layerOf(layers, to)
	if tl == nil {
		return false
	}
	switch {
	case tl == from, tl.folder == "internal", from.may[tl.folder], test && from.testsMay[tl.folder]:
		return true
	}
	return false
}

// TestLayering checks the import table of docs/ARCHITECTURE.md: every Go
// file of the module (tests included) imports only what its row allows, and
// every package sits in a folder that has a row.
func TestLayering(t *testing.T) {
	doc, err := os.ReadFile(archDoc)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := parseLayers(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		for f := range l.may {
			if layerOf(layers, f) == nil {
				t.Errorf("%s:%d: row %q may import %q, which has no row", archDoc, l.line, l.folder, f)
			}
		}
	}
	fset := token.NewFileSet()
	var problems []string
	err = filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if p != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil && p != "." {
				return filepath.SkipDir // another module (tools/jaeger)
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		dir := path.Dir(filepath.ToSlash(p))
		from := layerOf(layers, dir)
		if from == nil {
			problems = append(problems, fmt.Sprintf("%s: package folder %q has no row in the import table of %s", p, dir, archDoc))
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		test := strings.HasSuffix(p, "_test.go")
		for _, imp := range f.Imports {
			ip := strings.Trim(imp.Path.Value, `"`)
			if ip != modulePath && !strings.HasPrefix(ip, modulePath+"/") {
				continue
			}
			to := strings.TrimPrefix(strings.TrimPrefix(ip, modulePath), "/")
			if to == "" {
				to = "."
			}
			if !allowed(layers, from, to, test) {
				problems = append(problems, fmt.Sprintf("%s:%d: imports %s: folder %q may not import %q (%s:%d)",
					p, fset.Position(imp.Pos()).Line, ip, from.folder, to, archDoc, from.line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(problems)
	for _, p := range slices.Compact(problems) {
		t.Error(p)
	}
}

// TestLayeringRules checks the table parser and the rules on a small table,
// so that a broken parser cannot pass TestLayering by reading nothing.
func TestLayeringRules(t *testing.T) {
	doc := "intro\n" + layeringBegin + "\n" +
		"| folder | holds | may import | tests may also import |\n" +
		"| --- | --- | --- | --- |\n" +
		"| `cmd/zflow` | CLI | everything | |\n" +
		"| `.` | root | `engine`, `pipelines` | `bench` |\n" +
		"| `engine` | core | `buffers` | |\n" +
		"| `buffers/` | memory | nothing of ours | |\n" +
		"| `io` | backends | `buffers` | |\n" +
		"| `internal` | leaves | nothing of ours | |\n" +
		"| `bench` | benchmarks | everything | |\n" +
		layeringEnd + "\n"
	layers, err := parseLayers([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 7 {
		t.Fatalf("got %d rows, want 7", len(layers))
	}
	byName := map[string]*layer{}
	for _, l := range layers {
		byName[l.folder] = l
	}
	for _, c := range []struct {
		from, to string
		test     bool
		want     bool
	}{
		{"engine", "buffers", false, true},
		{"engine", "pipelines", false, false},
		{"engine", "io/uring", false, false},
		{"engine", "internal/atomicfile", false, true},
		{"engine", "engine", false, true},
		{"buffers", "engine", false, false},
		{"io", "io/posix", false, true},
		{"io", "buffers", false, true},
		{".", "engine", false, true},
		{".", "bench", false, false},
		{".", "bench", true, true},
		{"cmd/zflow", "bench", false, true},
		{"engine", "nowhere", false, false},
	} {
		from := layerOf(layers, c.from)
		if from == nil {
			t.Fatalf("no row covers %q", c.from)
		}
		if got := allowed(layers, from, c.to, c.test); got != c.want {
			t.Errorf("%s -> %s (test %v): allowed = %v, want %v", c.from, c.to, c.test, got, c.want)
		}
	}
	if l := layerOf(layers, "io/uring"); l != byName["io"] {
		t.Errorf("io/uring is covered by %v, want the io row", l)
	}
	if l := layerOf(layers, "operators"); l != nil {
		t.Errorf("operators has no row here, but layerOf found %q", l.folder)
	}
	for _, bad := range []string{
		"no table here\n",
		layeringBegin + "\n| `engine` | core | `buffers` |\n" + layeringEnd + "\n",
		layeringBegin + "\n| `engine` | core | none | |\n" + layeringEnd + "\n",
		layeringBegin + "\n| `engine` | core | `buffers` | |\n",
	} {
		if _, err := parseLayers([]byte(bad)); err == nil {
			t.Errorf("parseLayers(%q) succeeded, want an error", bad)
		}
	}
}
