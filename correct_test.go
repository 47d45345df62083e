package zflow_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zflowdev/zflow"
)

// TestCSVEmptyStringRoundTrip: an empty string and a null written by the
// csv sink ("" and nothing) read back as an empty string and a null.
func TestCSVEmptyStringRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	if err := os.WriteFile(in, []byte("{\"s\": \"\", \"n\": 1}\n{\"s\": null, \"n\": null}\n{\"s\": \"x\", \"n\": 3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mid, back := filepath.Join(dir, "mid.csv"), filepath.Join(dir, "back.ndjson")
	run := func(src string) {
		t.Helper()
		p, err := zflow.Parse([]byte(src), "rt.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	run("version: 1\nname: a\nsources:\n  j: {type: ndjson, path: " + in + "}\nsinks:\n  c: {type: csv, inputs: [j], path: " + mid + "}\n")
	csvText, _ := os.ReadFile(mid)
	if string(csvText) != "s,n\n\"\",1\n,\nx,3\n" {
		t.Fatalf("csv written: %q", csvText)
	}
	run("version: 1\nname: b\nsources:\n  c: {type: csv, path: " + mid + "}\nsinks:\n  j: {type: ndjson, inputs: [c], path: " + back + "}\n")
	got, _ := os.ReadFile(back)
	want := "{\"s\":\"\",\"n\":1}\n{\"s\":null,\"n\":null}\n{\"s\":\"x\",\"n\":3}\n"
	if strings.ReplaceAll(string(got), " ", "") != want {
		t.Fatalf("read back:\n%s\nwant\n%s", got, want)
	}
}
