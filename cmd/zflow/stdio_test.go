package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// zflowPipe runs zflow with stdin as standard input.
func zflowPipe(t *testing.T, stdin []byte, args ...string) (code int, stdout []byte, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = runIO(context.Background(), args, onlyReader{bytes.NewReader(stdin)}, &o, &e)
	return code, o.Bytes(), e.String()
}

// onlyReader hides every method but Read: standard input is a pipe.
type onlyReader struct{ r *bytes.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// TestRunStdio: path - reads standard input and writes standard output, for
// text (plain and gzip) and for an Arrow IPC stream piped from one run to
// the next.
func TestRunStdio(t *testing.T) {
	dir := t.TempDir()
	gz, err := os.ReadFile(filepath.Join("..", "..", "operators", "testdata", "compressed", "trades.csv.gz"))
	if err != nil {
		t.Fatal(err)
	}
	toND := writeTemp(t, dir, "nd.yaml", "version: 1\nname: s\nsources:\n  t: {type: csv, path: '-'}\nsinks:\n  o: {type: ndjson, inputs: [t], path: '-'}\n")
	code, out, e := zflowPipe(t, []byte("a,b\n1,x\n2,\"y,z\"\n"), "run", "--quiet", toND)
	if code != 0 || string(out) != "{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":\"y,z\"}\n" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, out, e)
	}
	code, out, e = zflowPipe(t, gz, "run", "--quiet", toND)
	if code != 0 || bytes.Count(out, []byte("\n")) != 20 || !bytes.HasPrefix(out, []byte(`{"symbol":"AAPL","price":195.19,"qty":200,`)) {
		t.Fatalf("gzip: exit %d, stdout %q, stderr %s", code, out, e)
	}
	// csv -> arrow stream on stdout -> arrow from stdin -> csv on stdout.
	toArrow := writeTemp(t, dir, "a.yaml", "version: 1\nname: a\nsources:\n  t: {type: csv, path: '-'}\nsinks:\n  o: {type: arrow, inputs: [t], path: '-', format: stream}\n")
	code, stream, e := zflowPipe(t, gz, "run", "--quiet", toArrow)
	if code != 0 || !bytes.HasPrefix(stream, []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Fatalf("to arrow: exit %d, stderr %s", code, e)
	}
	fromArrow := writeTemp(t, dir, "b.yaml", "version: 1\nname: b\nsources:\n  t: {type: arrow, path: '-'}\nsinks:\n  o: {type: csv, inputs: [t], path: '-'}\n")
	code, out, e = zflowPipe(t, stream, "run", "--quiet", fromArrow)
	if code != 0 || bytes.Count(out, []byte("\n")) != 21 || !bytes.HasPrefix(out, []byte("symbol,price,qty,ts\nAAPL,195.19,200,")) {
		t.Fatalf("from arrow: exit %d, stdout %q, stderr %s", code, out, e)
	}
	// Parquet and the Arrow file format need no seeking to write: both go
	// to standard output, and read back from a file.
	for _, format := range []string{"parquet", "arrow"} {
		toFile := writeTemp(t, dir, format+".yaml", "version: 1\nname: f\nsources:\n  t: {type: csv, path: '-'}\nsinks:\n  o: {type: "+format+", inputs: [t], path: '-'}\n")
		code, data, e := zflowPipe(t, gz, "run", "--quiet", toFile)
		if code != 0 {
			t.Fatalf("%s to stdout: exit %d: %s", format, code, e)
		}
		saved := writeTemp(t, dir, "saved."+format, string(data))
		back := writeTemp(t, dir, "back.yaml", "version: 1\nname: b\nsources:\n  t: {type: "+format+", path: "+saved+"}\nsinks:\n  o: {type: csv, inputs: [t], path: '-'}\n")
		code, out, e = zflowPipe(t, nil, "run", "--quiet", back)
		if code != 0 || bytes.Count(out, []byte("\n")) != 21 || !bytes.HasPrefix(out, []byte("symbol,price,qty,ts\nAAPL,195.19,200,")) {
			t.Fatalf("%s from stdout: exit %d, stdout %q, stderr %s", format, code, out, e)
		}
	}
	// The stdout sink writes the run's standard output too.
	table := writeTemp(t, dir, "t.yaml", "version: 1\nname: t\nsources:\n  t: {type: csv, path: '-'}\nsinks:\n  o: {type: stdout, inputs: [t], format: csv}\n")
	if code, out, e := zflowPipe(t, []byte("a\n1\n"), "run", "--quiet", table); code != 0 || string(out) != "a\n1\n" {
		t.Fatalf("stdout sink: exit %d, %q %s", code, out, e)
	}
}

// TestRunStdioErrors: what cannot work with standard input and output,
// file lists and partitioned output is refused before anything runs, with
// exit 2 and the place in the pipeline file, and leaves no file.
func TestRunStdioErrors(t *testing.T) {
	dir := t.TempDir()
	csv := writeTemp(t, dir, "in.csv", "a\n1\n")
	out := filepath.Join(dir, "out.csv")
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o755)
	writeTemp(t, data, "a.csv", "id,price\n1,2.5\n")
	writeTemp(t, data, "b.csv", "id,cost\n2,3.5\n")
	for _, tc := range []struct {
		name, yaml string
		args       []string
		want       []string
	}{
		{"two stdin readers", "version: 1\nname: x\nsources:\n  a: {type: csv, path: '-'}\n  b: {type: ndjson, path: '-'}\noperators:\n  u: {type: union, inputs: [a, b]}\nsinks:\n  o: {type: csv, inputs: [u], path: " + out + "}\n",
			nil, []string{`p.yaml:4:24: only one node of a pipeline may read standard input, and source "b" reads it too`, `p.yaml:5:27: only one node of a pipeline may read standard input, and source "a" reads it too`}},
		{"two stdout writers", "version: 1\nname: x\nsources:\n  a: {type: csv, path: " + csv + "}\nsinks:\n  o: {type: csv, inputs: [a], path: '-'}\n  p: {type: stdout, inputs: [a]}\n",
			nil, []string{`p.yaml:6:37: only one node of a pipeline may write standard output, and sink "p" writes it too`, `p.yaml:7:3: only one node of a pipeline may write standard output, and sink "o" writes it too`}},
		{"parquet from stdin", "version: 1\nname: x\nsources:\n  a: {type: parquet, path: '-'}\nsinks:\n  o: {type: csv, inputs: [a], path: " + out + "}\n",
			nil, []string{`p.yaml:4:28: parquet: cannot read standard input: a Parquet file keeps its schema and row group index in a footer at its end`}},
		{"json summary and a - sink", "version: 1\nname: x\nsources:\n  a: {type: csv, path: " + csv + "}\nsinks:\n  o: {type: ndjson, inputs: [a], path: '-'}\n",
			[]string{"--json"}, []string{`run: --json prints the summary on stdout, where sink "o" (ndjson, path: -) writes its rows too`}},
		{"glob matches nothing", "version: 1\nname: x\nsources:\n  a: {type: csv, path: " + filepath.Join(dir, "*.tsv") + "}\nsinks:\n  o: {type: csv, inputs: [a], path: " + out + "}\n",
			nil, []string{`p.yaml:4:24: csv: no file matches "` + filepath.Join(dir, "*.tsv") + `"`}},
		{"columns differ across files", "version: 1\nname: x\nsources:\n  a: {type: csv, path: " + data + "}\nsinks:\n  o: {type: csv, inputs: [a], path: " + out + "}\n",
			nil, []string{`p.yaml:4:24: csv: column 2 is "cost" in ` + filepath.Join(data, "b.csv") + ` but "price" in ` + filepath.Join(data, "a.csv") + ` (the first file, which sets the columns)`}},
		{"float partition key", "version: 1\nname: x\nsources:\n  a: {type: csv, path: " + filepath.Join(data, "a.csv") + "}\nsinks:\n  o: {type: parquet, inputs: [a], path: " + out + ", partition_by: [id, price]}\n",
			// The column depends on the temporary directory's name, whose length varies.
			nil, []string{fmt.Sprintf("p.yaml:6:%d: column \"price\" is float64, which cannot be a partition key", len("  o: {type: parquet, inputs: [a], path: "+out+", partition_by: [id, ")+1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeTemp(t, dir, "p.yaml", tc.yaml)
			args := append(append([]string{"run", "--quiet"}, tc.args...), p)
			code, stdout, e := zflowPipe(t, []byte("a\n1\n"), args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr %s", code, exitUsage, e)
			}
			for _, w := range tc.want {
				if !strings.Contains(e, w) {
					t.Errorf("stderr lacks %q:\n%s", w, e)
				}
			}
			if len(stdout) != 0 {
				t.Errorf("stdout %q", stdout)
			}
			if names := dirList(t, dir); strings.Join(names, ",") != "data,in.csv,p.yaml" {
				t.Errorf("left in the directory: %v", names)
			}
		})
	}
}

func dirList(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
