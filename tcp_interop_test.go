package zflow_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators"
)

// arrowJS returns the node command line of bench/duckdb/arrow_tcp.mjs, or
// skips (fails under ZFLOW_REQUIRE_DUCKDB=1, as make test sets) when node
// or the apache-arrow package (make duckdb) is missing.
func arrowJS(t *testing.T) []string {
	t.Helper()
	script, _ := filepath.Abs(filepath.Join("bench", "duckdb", "arrow_tcp.mjs"))
	pkg := filepath.Join("bench", "duckdb", "node_modules", "apache-arrow", "package.json")
	_, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(pkg)
	}
	if err != nil {
		msg := fmt.Sprintf("the apache-arrow npm package is not installed (%v): run make duckdb", err)
		if os.Getenv("ZFLOW_REQUIRE_DUCKDB") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return []string{"node", script}
}

// jsonRows normalises rows the way the node side prints them.
func jsonRows(t *testing.T, lines []string) [][]any {
	t.Helper()
	var rows [][]any
	for _, l := range lines {
		if l == "" || l == "LISTENING" {
			continue
		}
		var r []any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("node printed %q: %v", l, err)
		}
		rows = append(rows, r)
	}
	return rows
}

// cell is a value as the node side prints it: int64 as a decimal string,
// timestamps in milliseconds.
func cell(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	case *array.Float64:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.Timestamp:
		return float64(a.Value(i)) / 1000
	case *array.Dictionary:
		return cell(a.Dictionary(), a.GetValueIndex(i))
	}
	return fmt.Sprintf("unsupported %s", a.DataType())
}

// fileRows reads an Arrow IPC file into rows of cells.
func fileRows(t *testing.T, path string) (*arrow.Schema, [][]any) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ipc.NewFileReader(f, ipc.WithAllocator(memory.NewGoAllocator()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var rows [][]any
	for i := 0; i < r.NumRecords(); i++ {
		rec, err := r.RecordBatchAt(i)
		if err != nil {
			t.Fatal(err)
		}
		for row := 0; row < int(rec.NumRows()); row++ {
			var cells []any
			for _, c := range rec.Columns() {
				cells = append(cells, cell(c, row))
			}
			rows = append(rows, cells)
		}
		rec.Release()
	}
	b, _ := json.Marshal(rows) // the same number forms as the node side's
	rows = nil
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	return r.Schema(), rows
}

func batchRows(n int) engine.Settings {
	s := engine.DefaultSettings()
	s.BatchRows = n
	return s
}

var interopGen = &operators.GenerateConfig{Rows: 150000, Seed: 9, Columns: []operators.GenerateColumn{
	{Name: "id", Type: "int64", Sequence: true, Min: -5, Max: 1 << 40},
	{Name: "sym", Type: "string", Cardinality: 50, NullRatio: 0.1},
	{Name: "px", Type: "float64", Min: 1, Max: 100, NullRatio: 0.05},
	{Name: "ok", Type: "bool"},
	{Name: "ts", Type: "timestamp"},
}}

// TestTCPInteropArrowJS: the apache-arrow npm package reads what tcp_out
// sends with protocol arrow, and writes a stream tcp_in reads; the rows and
// values are the same on both sides.
func TestTCPInteropArrowJS(t *testing.T) {
	node := arrowJS(t)
	dir := t.TempDir()

	t.Run("tcp_out to arrow js", func(t *testing.T) {
		addr := freeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(node[0], node[1], "recv", port)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		if !sc.Scan() || sc.Text() != "LISTENING" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("node did not start listening: %s", stderr.String())
		}
		lines := make(chan []string, 1)
		go func() {
			var ls []string
			for sc.Scan() {
				ls = append(ls, sc.Text())
			}
			lines <- ls
		}()
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		send, err := zflow.New("to-js").Settings(batchRows(40000)).Source("g", "generate", interopGen).
			Sink("net", "tcp_out", &operators.TCPOutConfig{Address: addr, Protocol: "arrow"}, "g").Build()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := send.Run(context.Background(), zflow.WithAllocator(mem)); err != nil {
			t.Fatal(err)
		}
		got := <-lines
		if err := cmd.Wait(); err != nil {
			t.Fatalf("node: %v\n%s", err, stderr.String())
		}
		path := filepath.Join(dir, "direct.arrow")
		direct, err := zflow.New("direct").Settings(batchRows(40000)).Source("g", "generate", interopGen).
			Sink("f", "arrow", &operators.ArrowSinkConfig{Path: path}, "g").Build()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := direct.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, want := fileRows(t, path)
		gotRows := jsonRows(t, got)
		if len(gotRows) != len(want) {
			t.Fatalf("arrow js read %d rows, want %d (%s)", len(gotRows), len(want), stderr.String())
		}
		for i := range want {
			if !reflect.DeepEqual(gotRows[i], want[i]) {
				t.Fatalf("row %d: arrow js read %v, want %v", i, gotRows[i], want[i])
			}
		}
		if !strings.Contains(stderr.String(), "read 4 batches") {
			t.Errorf("node: %s, want 4 batches", stderr.String())
		}
	})

	t.Run("arrow js to tcp_in", func(t *testing.T) {
		addr := freeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(node[0], node[1], "send", port)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		path := filepath.Join(dir, "from_js.arrow")
		// No schema: compiling accepts the connection and reads the stream's.
		recv, err := zflow.New("from-js").Source("in", "tcp_in", &operators.TCPInConfig{Listen: addr, Protocol: "arrow", AcceptTimeout: 30 * time.Second}).
			Sink("f", "arrow", &operators.ArrowSinkConfig{Path: path}, "in").Build()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := recv.Run(context.Background(), zflow.WithAllocator(mem)); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("node: %v\n%s", err, stderr.String())
		}
		schema, got := fileRows(t, path)
		want := jsonRows(t, strings.Split(stdout.String(), "\n"))
		if len(got) != len(want) || len(want) != 2500 {
			t.Fatalf("tcp_in read %d rows, arrow js sent %d", len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("row %d: tcp_in read %v, arrow js sent %v", i, got[i], want[i])
			}
		}
		if dt := schema.Field(3).Type; dt.ID() != arrow.DICTIONARY {
			t.Errorf("column tag is %s, want the dictionary arrow js sent", dt)
		}
	})
}
