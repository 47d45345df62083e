package pipelines_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/engine"
	_ "github.com/zflowdev/zflow/operators"
	"github.com/zflowdev/zflow/pipelines"
)

// TestFileListErrorPlace: an error about one file of a path list is placed
// at the list entry it came from.
func TestFileListErrorPlace(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"a.csv": "id,price\n1,2.5\n", "b.csv": "id,cost\n2,3.5\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := "version: 1\nname: differ\nsources:\n  t: {type: csv, path: [\"${D}/a.csv\", \"${D}/b*.csv\"]}\nsinks:\n  out: {type: discard, inputs: [t]}\n"
	p, err := pipelines.Parse([]byte(src), "p.yaml", pipelines.WithEnv(func(string) (string, bool) { return dir, true }))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Compile()
	want := `p.yaml:4:39: csv: column 2 is "cost" in ` + filepath.Join(dir, "b.csv") + ` but "price" in ` + filepath.Join(dir, "a.csv")
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v\nwant %s...", err, want)
	}
}

// TestStdinCompiledTwice: a pipeline reading "-" compiled twice peeks at
// the same buffered stream, and a run reads it from its start.
func TestStdinCompiledTwice(t *testing.T) {
	src := "version: 1\nname: twice\nsources:\n  t: {type: csv, path: \"-\"}\nsinks:\n  out: {type: discard, inputs: [t]}\n"
	p, err := pipelines.Parse([]byte(src), "p.yaml", pipelines.WithStdin(strings.NewReader("a,b\n1,x\n2,y\n")))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		plan, err := p.Compile()
		if err != nil {
			t.Fatal(err)
		}
		if got := plan.Schema("t").String(); !strings.Contains(got, "a: type=int64") || !strings.Contains(got, "b: type=utf8") {
			t.Fatalf("schema %s", got)
		}
	}
	plan, _ := p.Compile()
	sum, err := plan.Run(context.Background(), engine.RunOptions{})
	if err != nil || sum.Op("out").RowsIn != 2 {
		t.Fatalf("%v %+v", err, sum.Op("out"))
	}
}
