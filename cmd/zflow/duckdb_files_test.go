package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/internal/duckdbtest"
)

// duckInputs writes three CSV files of the same columns: an integer id, a
// string with the characters a partition directory must escape, a date, an
// integer bucket, a float (some null) and free text that needs quoting.
func duckInputs(t *testing.T, dir string) []string {
	t.Helper()
	keys := []string{"a/b", "x=y", "50%", "plain", "sp ace", "ü"}
	var files []string
	id := 0
	for f := range 3 {
		var b strings.Builder
		b.WriteString("id,k,day,bucket,price,note\n")
		for r := range 20 + 7*f {
			id++
			price := fmt.Sprintf("%d.%02d", id*7%500, id%100)
			if id%9 == 0 {
				price = ""
			}
			fmt.Fprintf(&b, "%d,%s,2024-01-%02d,%d,%s,\"say \"\"hi\"\", %d\"\n", id, keys[(id*5+r)%len(keys)], 1+id%3, id%4, price, id)
		}
		files = append(files, writeTemp(t, dir, fmt.Sprintf("in-%d.csv", f), b.String()))
	}
	return files
}

// sqlList is paths as a DuckDB list literal.
func sqlList(paths []string) string {
	q := make([]string, len(paths))
	for i, p := range paths {
		q[i] = "'" + p + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// sameRows checks in DuckDB that two queries give the same multiset of rows
// (EXCEPT ALL both ways, and the same count), after the setup statements.
func sameRows(t *testing.T, db *duckdbtest.DB, what, want, got string, setup ...string) {
	t.Helper()
	stmts := append(setup,
		"SELECT count(*) FROM ("+want+")",
		"SELECT count(*) FROM ("+got+")",
		"SELECT * FROM (("+want+") EXCEPT ALL ("+got+")) LIMIT 5",
		"SELECT * FROM (("+got+") EXCEPT ALL ("+want+")) LIMIT 5")
	res := db.Run(t, stmts...)
	for i, r := range res {
		if r.Err != "" {
			t.Fatalf("%s: %s: %s", what, stmts[i], r.Err)
		}
	}
	r := res[len(setup):]
	if wn, gn := r[0].Strings(), r[1].Strings(); wn[0] != gn[0] || wn[0] == "0" {
		t.Errorf("%s: %s rows from DuckDB's reading, %s from zflow's", what, wn[0], gn[0])
	}
	if len(r[2].Rows) > 0 || len(r[3].Rows) > 0 {
		t.Errorf("%s: rows only DuckDB has: %v; rows only zflow has: %v", what, r[2].Strings(), r[3].Strings())
	}
}

// TestDuckDBRoundTrips: what zflow writes from several input files, from
// standard input, to standard output and into a partitioned directory,
// DuckDB reads back as the same rows it reads from the inputs; and a
// partitioned directory DuckDB writes, zflow reads back.
func TestDuckDBRoundTrips(t *testing.T) {
	db := duckdbtest.Open(t)
	dir := t.TempDir()
	ins := duckInputs(t, dir)
	glob := filepath.Join(dir, "in-*.csv")
	// DuckDB's view of the inputs; the CSV source infers the same types.
	inputs := "SELECT id, k, day, bucket, price, note FROM read_csv(" + sqlList(ins) + ", header=true)"
	run := func(name, yaml string, stdin []byte) []byte {
		t.Helper()
		p := writeTemp(t, dir, name+".yaml", "version: 1\nname: "+name+"\n"+yaml)
		code, out, e := zflowPipe(t, stdin, "run", "--quiet", p)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, e)
		}
		return out
	}

	// Many files -> one parquet file.
	pq := filepath.Join(dir, "glob.parquet")
	run("glob", "sources:\n  in: {type: csv, path: '"+glob+"', filename: true}\nsinks:\n  out: {type: parquet, inputs: [in], path: "+pq+"}\n", nil)
	sameRows(t, db, "glob of csv to parquet", inputs, "SELECT id, k, day, bucket, price, note FROM read_parquet('"+pq+"')")
	sameRows(t, db, "the filename column",
		"SELECT id, filename FROM read_csv("+sqlList(ins)+", header=true, filename=true)",
		"SELECT id, filename FROM read_parquet('"+pq+"')")

	// A list of files -> a partitioned parquet tree; DuckDB reads it with
	// hive_partitioning, the keys coming from the directory names.
	tree := filepath.Join(dir, "tree")
	run("tree", "sources:\n  in: {type: csv, path: ['"+ins[2]+"', '"+ins[0]+"', '"+ins[1]+"']}\nsinks:\n  out: {type: parquet, inputs: [in], path: "+tree+", partition_by: [k, day], max_open_files: 3}\n", nil)
	sameRows(t, db, "partitioned parquet", inputs,
		"SELECT id, k, day, bucket, price, note FROM read_parquet('"+tree+"/**/*.parquet', hive_partitioning=true)")
	res := db.Query(t, "SELECT count(*) FROM (DESCRIBE SELECT * FROM read_parquet('"+tree+"/**/*.parquet', hive_partitioning=false)) WHERE column_name IN ('k', 'day')")
	if res.Err != "" || res.Strings()[0] != "0" {
		t.Errorf("the partition keys are inside the files: %v %s", res.Strings(), res.Err)
	}
	// The directory names are DuckDB's.
	dk := filepath.Join(dir, "dk")
	if res := db.Query(t, "COPY ("+inputs+") TO '"+dk+"' (FORMAT parquet, PARTITION_BY (k))"); res.Err != "" {
		t.Fatal(res.Err)
	}
	if got, want := strings.Join(dirList(t, tree), ","), strings.Join(dirList(t, dk), ","); got != want {
		t.Errorf("partition directories: zflow wrote %s, DuckDB %s", got, want)
	}
	// The same tree as csv, read by DuckDB.
	ctree := filepath.Join(dir, "ctree")
	run("ctree", "sources:\n  in: {type: csv, path: '"+glob+"'}\nsinks:\n  out: {type: csv, inputs: [in], path: "+ctree+", partition_by: [bucket]}\n", nil)
	sameRows(t, db, "partitioned csv", inputs,
		"SELECT id, k, day, bucket, price, note FROM read_csv('"+ctree+"/**/*.csv', hive_partitioning=true, header=true)")

	// And as ndjson, partitioned by a date.
	ntree := filepath.Join(dir, "ntree")
	run("ntree", "sources:\n  in: {type: csv, path: '"+glob+"'}\nsinks:\n  out: {type: ndjson, inputs: [in], path: "+ntree+", partition_by: [day]}\n", nil)
	sameRows(t, db, "partitioned ndjson", inputs,
		"SELECT id, k, day, bucket, price, note FROM read_json('"+ntree+"/**/*.ndjson', hive_partitioning=true)")

	// Standard input -> parquet; csv -> standard output.
	in0, err := os.ReadFile(ins[0])
	if err != nil {
		t.Fatal(err)
	}
	sp := filepath.Join(dir, "stdin.parquet")
	run("stdin", "sources:\n  in: {type: csv, path: '-'}\nsinks:\n  out: {type: parquet, inputs: [in], path: "+sp+"}\n", in0)
	first := "SELECT id, k, day, bucket, price, note FROM read_csv('" + ins[0] + "', header=true)"
	sameRows(t, db, "csv from standard input", first, "SELECT id, k, day, bucket, price, note FROM read_parquet('"+sp+"')")
	out := run("stdout", "sources:\n  in: {type: parquet, path: "+sp+"}\nsinks:\n  out: {type: csv, inputs: [in], path: '-'}\n", nil)
	so := writeTemp(t, dir, "stdout.csv", string(out))
	sameRows(t, db, "csv to standard output", first, "SELECT id, k, day, bucket, price, note FROM read_csv('"+so+"', header=true)")

	// DuckDB writes a partitioned tree; zflow reads it (hive keys restored)
	// into one parquet file that DuckDB compares with its table.
	dtree := filepath.Join(dir, "dtree")
	res = db.Query(t, "COPY ("+inputs+") TO '"+dtree+"' (FORMAT parquet, PARTITION_BY (k, bucket))")
	if res.Err != "" {
		t.Fatal(res.Err)
	}
	back := filepath.Join(dir, "back.parquet")
	run("back", "sources:\n  in: {type: parquet, path: "+dtree+", hive_partitioning: true}\nsinks:\n  out: {type: parquet, inputs: [in], path: "+back+"}\n", nil)
	sameRows(t, db, "DuckDB's partitioned tree read by zflow", inputs, "SELECT id, k, day, bucket, price, note FROM read_parquet('"+back+"')")
}
