package zflow_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/zflowdev/zflow"
)

// readmeBlock returns the first fenced block of lang after the heading in
// README.md.
func readmeBlock(t *testing.T, readme, heading, lang string) string {
	t.Helper()
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no heading %q", heading)
	}
	rest := readme[i:]
	start := strings.Index(rest, "\n```"+lang+"\n")
	if start < 0 {
		t.Fatalf("README.md has no ```%s block after %q", lang, heading)
	}
	rest = rest[start+len("\n```"+lang+"\n"):]
	end := strings.Index(rest, "\n```\n")
	if end < 0 {
		t.Fatalf("README.md: the ```%s block after %q does not end", lang, heading)
	}
	return rest[:end+1]
}

// exampleBody returns the body of func name in src, one tab of indent
// removed, without its // Output: comment.
func exampleBody(t *testing.T, src, name string) string {
	t.Helper()
	i := strings.Index(src, "\nfunc "+name+"() {\n")
	if i < 0 {
		t.Fatalf("no func %s", name)
	}
	var b strings.Builder
	for _, line := range strings.Split(src[i+len("\nfunc "+name+"() {\n"):], "\n") {
		if line == "}" || strings.HasPrefix(line, "\t// Output:") {
			break
		}
		b.WriteString(strings.TrimPrefix(line, "\t") + "\n")
	}
	return b.String()
}

// TestReadme keeps README.md true: its pipeline is
// pipelines/examples/quickstart.yaml (which TestExamples runs), the error
// it quotes is the error that file gives with the typo, its embedding
// snippet is ExampleLoad's body (which go test runs), and every example
// file is named after itself and says what it does.
func TestReadme(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	qs, err := os.ReadFile("pipelines/examples/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := readmeBlock(t, readme, "## A pipeline", "yaml"); got != string(qs) {
		t.Errorf("README's pipeline is not pipelines/examples/quickstart.yaml:\n%s", got)
	}

	// The error README quotes, from the same file with qty misspelt.
	m := regexp.MustCompile("`(quickstart\\.yaml:\\d+:\\d+: unknown column \"qyt\"[^`]*)`").FindStringSubmatch(readme)
	if m == nil {
		t.Fatal("README.md quotes no quickstart.yaml error")
	}
	typo := strings.Replace(string(qs), "where: \"qty > 100", "where: \"qyt > 100", 1)
	if typo == string(qs) {
		t.Fatal("quickstart.yaml has no `where: \"qty > 100`")
	}
	if _, err := zflow.Parse([]byte(typo), "quickstart.yaml"); err == nil || err.Error() != m[1] {
		t.Errorf("README quotes %q; the file with the typo gives %v", m[1], err)
	}

	ex, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readmeBlock(t, readme, "## Embedding", "go"), exampleBody(t, string(ex), "ExampleLoad"); got != want {
		t.Errorf("README's embedding snippet is not ExampleLoad's body:\nREADME:\n%s\nExampleLoad:\n%s", got, want)
	}

	files, err := filepath.Glob("pipelines/examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if !strings.HasPrefix(string(src), "# "+name+": ") {
			t.Errorf("%s does not start with a comment saying what it does (# %s: ...)", f, name)
		}
		if !strings.Contains(string(src), "\nname: "+name+"\n") {
			t.Errorf("%s: want name: %s", f, name)
		}
	}
}
