package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunCompressedCSV: zflow run reads a gzip-compressed CSV (found by its
// magic bytes, whatever its name) into the same rows as the plain file; a
// Parquet file given to the csv source is refused before anything runs,
// with exit 2, the place in the pipeline file, what the file looks like,
// and no output file.
func TestRunCompressedCSV(t *testing.T) {
	dir := t.TempDir()
	gz, err := os.ReadFile(filepath.Join("..", "..", "operators", "testdata", "compressed", "trades.csv.gz"))
	if err != nil {
		t.Fatal(err)
	}
	in := writeTemp(t, dir, "trades.dat", string(gz))
	out := filepath.Join(dir, "out.csv")
	p := writeTemp(t, dir, "p.yaml", "version: 1\nname: gz\nsources:\n  t: {type: csv, path: "+in+"}\nsinks:\n  o: {type: csv, inputs: [t], path: "+out+"}\n")
	code, _, e := zflowRun(t, "run", "--quiet", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(got), "\n"); lines != 21 || !strings.HasPrefix(string(got), "symbol,price,qty,ts\nAAPL,195.19,200,") {
		t.Fatalf("%d lines:\n%s", lines, got)
	}

	// A Parquet file given to csv: made by zflow itself.
	pq := filepath.Join(dir, "trades.parquet")
	mk := writeTemp(t, dir, "mk.yaml", "version: 1\nname: mk\nsources:\n  t: {type: csv, path: "+in+"}\nsinks:\n  o: {type: parquet, inputs: [t], path: "+pq+"}\n")
	if code, _, e := zflowRun(t, "run", "--quiet", mk); code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	out2 := filepath.Join(dir, "out2.csv")
	bad := writeTemp(t, dir, "bad.yaml", "version: 1\nname: bad\nsources:\n  t: {type: csv, path: "+pq+"}\nsinks:\n  o: {type: csv, inputs: [t], path: "+out2+"}\n")
	code, _, e = zflowRun(t, "run", bad)
	if code != 2 || !strings.Contains(e, "bad.yaml:4:") || !strings.Contains(e, "trades.parquet looks like a Parquet file; use type: parquet") {
		t.Fatalf("exit %d:\n%s", code, e)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Fatalf("an output file was left: %v", err)
	}
}
