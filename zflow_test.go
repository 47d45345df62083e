package zflow_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators"
)

// runIn runs the pipeline file at path (relative to the repo root) inside a
// fresh directory, on a checked allocator over base (Go's allocator when
// nil), and checks that it ends with zero bytes outstanding and no
// goroutine left.
func runIn(t *testing.T, path string, base memory.Allocator) (engine.Summary, string) {
	t.Helper()
	root := repoRoot
	t.Setenv("ZFLOW_DATA", filepath.Join(root, "testdata"))
	p, err := zflow.Load(filepath.Join(root, path))
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	if base == nil {
		base = memory.NewGoAllocator()
	}
	mem := memory.NewCheckedAllocator(base)
	sum, err := p.Run(context.Background(), zflow.WithAllocator(mem))
	if err != nil {
		t.Fatalf("run %s: %v", path, err)
	}
	mem.AssertSize(t, 0)
	goleak.VerifyNone(t)
	return sum, dir
}

// TestExamples validates and runs every file in pipelines/examples.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("pipelines/examples/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		for _, alloc := range []string{"heap", "arena"} {
			t.Run(filepath.Base(f)+"/"+alloc, func(t *testing.T) {
				var base memory.Allocator
				if alloc == "arena" {
					// Every operator of every example on the arena allocator:
					// zero bytes outstanding and an arena that closes clean.
					a, err := buffers.New(buffers.ArenaConfig{Kind: buffers.KindHugepage, Node: buffers.NoNode, Prefault: true,
						Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						t.Fatal(err)
					}
					defer func() {
						if err := a.Close(); err != nil {
							t.Error(err)
						}
					}()
					base = a
				}
				exampleRun(t, f, base)
			})
		}
	}
}

// exampleRun runs the example file f on a checked allocator over base and
// checks its outputs.
func exampleRun(t *testing.T, f string, base memory.Allocator) {
	sum, dir := runIn(t, f, base)
	var sinks int
	for _, o := range sum.Ops {
		if o.Kind == "sink" {
			sinks++
		}
	}
	if sinks == 0 {
		t.Fatal("no sink ran")
	}
	switch filepath.Base(f) {
	case "quickstart.yaml":
		checkQuickstart(t, sum, dir)
	case "raw_blocks.yaml":
		checkRawBlocks(t, dir)
	case "dedupe.yaml":
		checkDedupe(t, dir)
	case "aggregate.yaml":
		checkAggregate(t, dir)
	case "distinct.yaml":
		checkDistinct(t, dir)
	case "repartition.yaml":
		checkRepartition(t, dir)
	case "window.yaml":
		checkWindow(t, dir)
	case "lookup_join.yaml":
		checkLookupJoin(t, dir)
	}
	// No temporary file is left beside the outputs.
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// checkDistinct checks the distinct example's outputs against its input:
// every (symbol, venue) pair seen once, and each symbol's first trade.
func checkDistinct(t *testing.T, dir string) {
	read := func(name string) []string {
		b, err := os.ReadFile(filepath.Join(dir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")[1:]
	}
	pairs, first := map[string]bool{}, map[string]string{}
	for _, l := range read("trades.csv") {
		f := strings.Split(l, ",")
		pairs[f[1]+","+f[2]] = true
		if _, ok := first[f[1]]; !ok {
			first[f[1]] = l
		}
	}
	got := read("pairs.csv")
	seen := map[string]bool{}
	for _, l := range got {
		if seen[l] || !pairs[l] {
			t.Fatalf("distinct: pair %q written twice or never seen", l)
		}
		seen[l] = true
	}
	if len(seen) != len(pairs) {
		t.Fatalf("distinct: %d pairs, the trades have %d", len(seen), len(pairs))
	}
	opening := read("opening.csv")
	if len(opening) != len(first) {
		t.Fatalf("distinct by symbol: %d rows, %d symbols", len(opening), len(first))
	}
	for _, l := range opening {
		sym := strings.Split(l, ",")[1]
		if first[sym] != l {
			t.Fatalf("distinct by symbol: %q, the first trade of %s is %q", l, sym, first[sym])
		}
	}
}

// checkDedupe checks the dedupe example's output against its input: each
// event id once, every id delivered, and each with its first delivery.
func checkDedupe(t *testing.T, dir string) {
	read := func(name string) []string {
		b, err := os.ReadFile(filepath.Join(dir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")[1:]
	}
	first := map[string]string{}
	for _, l := range read("deliveries.csv") {
		id, _, _ := strings.Cut(l, ",")
		if _, ok := first[id]; !ok {
			first[id] = l
		}
	}
	got := read("events.csv")
	seen := map[string]bool{}
	for _, l := range got {
		id, _, _ := strings.Cut(l, ",")
		if seen[id] {
			t.Fatalf("dedupe: event %s written twice", id)
		}
		seen[id] = true
		if first[id] != l {
			t.Fatalf("dedupe: event %s written as %q, its first delivery was %q", id, l, first[id])
		}
	}
	if len(got) != len(first) || len(got) < 1000 {
		t.Fatalf("dedupe: %d events written, %d distinct delivered", len(got), len(first))
	}
}

// checkRawBlocks checks the raw example's outputs against the file it
// read: the block copy is the same bytes, the head its first ten 32-byte
// records.
// checkAggregate: one row per symbol, volumes adding up to the input's
// rows times their mean size, every VWAP within the price range.
func checkAggregate(t *testing.T, dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "out", "vwap.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[0] != "symbol,volume,vwap,trades,large_pct,high" || len(lines) != 21 {
		t.Fatalf("vwap.csv: header %q and %d rows, want 20 symbols", lines[0], len(lines)-1)
	}
	var trades int64
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		n, _ := strconv.ParseInt(f[3], 10, 64)
		vwap, _ := strconv.ParseFloat(f[2], 64)
		trades += n
		if vwap < 10 || vwap > 500 {
			t.Errorf("vwap.csv: %s: vwap outside the prices", l)
		}
	}
	if trades != 1000000 {
		t.Errorf("vwap.csv: %d trades, want 1000000", trades)
	}
}

// checkRepartition checks the repartition example: every account once,
// and the accounts' trades and volume adding up to the grand totals.
func checkRepartition(t *testing.T, dir string) {
	read := func(name string) []string {
		b, err := os.ReadFile(filepath.Join(dir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	totals, all := read("totals.csv"), read("all.csv")
	if totals[0] != "account,trades,volume,notional" || all[0] != "trades,volume" || len(all) != 2 {
		t.Fatalf("headers %q and %q, %d grand total rows", totals[0], all[0], len(all)-1)
	}
	seen := map[string]bool{}
	var trades, volume int64
	for _, l := range totals[1:] {
		f := strings.Split(l, ",")
		if seen[f[0]] {
			t.Fatalf("account %s written twice", f[0])
		}
		seen[f[0]] = true
		n, _ := strconv.ParseInt(f[1], 10, 64)
		v, _ := strconv.ParseInt(f[2], 10, 64)
		trades += n
		volume += v
	}
	if got, want := fmt.Sprintf("%d,%d", trades, volume), all[1]; got != want || trades != 1000000 {
		t.Errorf("the accounts add up to %s, the grand total is %s", got, want)
	}
	if len(seen) < 99000 {
		t.Errorf("%d accounts, want about 100000", len(seen))
	}
}

// checkWindow checks the window example: every trade is in its minute bar
// or among the late rows, each (bar, symbol) once, bars a minute long; the
// 5-minute windows every minute, which allow 2 minutes of lateness, hold
// every trade 5 times.
func checkWindow(t *testing.T, dir string) {
	read := func(name string) [][]string {
		b, err := os.ReadFile(filepath.Join(dir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		var rows [][]string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
			rows = append(rows, strings.Split(l, ","))
		}
		return rows
	}
	num := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return n
	}
	var trades, volume int64
	seen := map[string]bool{}
	for _, r := range read("bars.csv") {
		start, _ := time.Parse(time.RFC3339, r[0])
		end, _ := time.Parse(time.RFC3339, r[1])
		if end.Sub(start) != time.Minute || start.Second() != 0 {
			t.Fatalf("bar %v: not a whole minute", r)
		}
		if seen[r[0]+r[2]] {
			t.Fatalf("bar %s %s written twice", r[0], r[2])
		}
		seen[r[0]+r[2]] = true
		trades += num(r[3])
		volume += num(r[4])
	}
	late := read("late.csv")
	if len(late) == 0 {
		t.Error("no late trade: the example should show some")
	}
	for _, r := range late {
		trades++
		volume += num(r[3])
	}
	if trades != 200000 {
		t.Errorf("%d trades in bars and late rows, want 200000", trades)
	}
	var v5 int64
	for _, r := range read("volume5m.csv") {
		v5 += num(r[2])
	}
	if v5 != 5*volume {
		t.Errorf("the 5-minute windows hold a volume of %d, want 5 × %d", v5, volume)
	}
}

// checkLookupJoin checks the lookup_join example against the symbols
// table's CSV twin: every trade once, in order, with its symbol's name and
// sector, or empty ones when the table lacks it.
func checkLookupJoin(t *testing.T, dir string) {
	lines := func(path string) []string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	names := map[string]string{}
	for _, l := range lines(filepath.Join(repoRoot, "testdata", "join", "symbols.csv"))[1:] {
		f := strings.Split(l, ",")
		names[f[0]] = f[1] + "," + f[2]
	}
	trades := lines(filepath.Join(repoRoot, "testdata", "trades.csv"))[1:]
	got := lines(filepath.Join(dir, "out", "trades_named.csv"))
	if got[0] != "symbol,price,qty,ts,name,sector" || len(got)-1 != len(trades) {
		t.Fatalf("header %q and %d rows, want %d trades", got[0], len(got)-1, len(trades))
	}
	missing := 0
	for i, l := range got[1:] {
		f := strings.Split(l, ",")
		if sym := strings.Split(trades[i], ",")[0]; f[0] != sym {
			t.Fatalf("row %d: symbol %s, the trade's is %s (order kept?)", i, f[0], sym)
		}
		want, ok := names[f[0]]
		if !ok {
			want = ","
			missing++
		}
		if f[4]+","+f[5] != want {
			t.Errorf("row %d: %s, want name and sector %q", i, l, want)
		}
	}
	if missing == 0 {
		t.Error("no trade of a symbol the table lacks: the example should show one")
	}
}

func checkRawBlocks(t *testing.T, dir string) {
	want, err := os.ReadFile(filepath.Join(repoRoot, "testdata", "trades.csv"))
	if err != nil {
		t.Fatal(err)
	}
	copied, err := os.ReadFile(filepath.Join(dir, "out", "trades_copy.csv"))
	if err != nil {
		t.Fatal(err)
	}
	head, err := os.ReadFile(filepath.Join(dir, "out", "trades_head.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(copied, want) {
		t.Errorf("raw_blocks: the copy holds %d bytes that differ from the %d of trades.csv", len(copied), len(want))
	}
	if !bytes.Equal(head, want[:320]) {
		t.Errorf("raw_blocks: the head holds %d bytes, want the first 320 of trades.csv", len(head))
	}
}

// checkQuickstart checks out/quickstart.parquet against data computed
// independently: the generate source run on its own (no engine), filtered
// and multiplied in plain Go loops, and the Parquet file read back with
// arrow-go's own reader.
func checkQuickstart(t *testing.T, sum engine.Summary, dir string) {
	want := oracleQuickstart(t)

	f, err := os.Open(filepath.Join(dir, "out/quickstart.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pf, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, mem)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { tbl.Release(); mem.AssertSize(t, 0) }()
	if tbl.NumRows() != int64(len(want)) {
		t.Fatalf("parquet has %d rows, the oracle %d", tbl.NumRows(), len(want))
	}
	names := []string{"ts", "symbol", "qty", "price", "notional"}
	for i, n := range names {
		if got := tbl.Schema().Field(i).Name; got != n {
			t.Fatalf("column %d is %q, want %q", i, got, n)
		}
	}
	tr := array.NewTableReader(tbl, 1<<20)
	defer tr.Release()
	row := 0
	for tr.Next() {
		rec := tr.RecordBatch()
		syms := rec.Column(1).(*array.String)
		qty := rec.Column(2).(*array.Int64)
		price := rec.Column(3).(*array.Float64)
		notional := rec.Column(4).(*array.Float64)
		for i := 0; i < int(rec.NumRows()); i++ {
			w := want[row]
			if syms.Value(i) != w.sym || qty.Value(i) != w.qty || price.Value(i) != w.price || notional.Value(i) != w.price*float64(w.qty) {
				t.Fatalf("row %d: got %s %d %v %v, want %+v", row, syms.Value(i), qty.Value(i), price.Value(i), notional.Value(i), w)
			}
			row++
		}
	}
	// The copy ledger reports the copies that happen, and nothing else: the
	// filter's compaction and the Parquet encoder.
	var copies []string
	for _, o := range sum.Ops {
		for reason := range o.Copies {
			copies = append(copies, o.ID+":"+reason)
		}
	}
	slices.Sort(copies)
	if strings.Join(copies, ",") != "big:filter compact,out:parquet encode" {
		t.Fatalf("copy ledger: %v", copies)
	}
	if n := sum.Op("notional"); n.BytesCopied != 0 || n.BytesRef == 0 {
		t.Fatalf("project copied %d bytes, passed %d by reference", n.BytesCopied, n.BytesRef)
	}
	if s := sum.Op("out"); s.RowsIn != int64(len(want)) {
		t.Fatalf("sink rows %d", s.RowsIn)
	}
}

type trade struct {
	sym   string
	qty   int64
	price float64
}

// oracleQuickstart runs quickstart's generate source directly and applies
// its filter with plain Go.
func oracleQuickstart(t *testing.T) []trade {
	t.Helper()
	cfg := &operators.GenerateConfig{Seed: 42, Rows: 2000000, Columns: []operators.GenerateColumn{
		{Name: "symbol", Type: "string", Cardinality: 20, Prefix: "SYM"},
		{Name: "price", Type: "float64", Min: 10, Max: 500},
		{Name: "qty", Type: "int64", Min: 1, Max: 1000},
		{Name: "ts", Type: "timestamp", Start: "2024-01-02T09:30:00Z", Step: 1e6},
	}}
	spec := operators.GenerateSpec()
	f, err := spec.Build(&engine.BuildContext{Node: "trades", Settings: engine.DefaultSettings()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewGoAllocator()
	src, err := f.New(&engine.InstanceContext{Node: "trades", Count: 1, Alloc: mem, Ledger: engine.NewLedger(), Settings: engine.DefaultSettings()})
	if err != nil {
		t.Fatal(err)
	}
	var out []trade
	keep := map[string]bool{"SYM0001": true, "SYM0002": true, "SYM0003": true}
	err = src.(engine.Source).Run(context.Background(), emitFunc(func(b arrow.RecordBatch) error {
		defer b.Release()
		syms := b.Column(0).(*array.String)
		price := b.Column(1).(*array.Float64)
		qty := b.Column(2).(*array.Int64)
		for i := 0; i < int(b.NumRows()); i++ {
			if qty.Value(i) > 100 && keep[syms.Value(i)] {
				out = append(out, trade{syms.Value(i), qty.Value(i), price.Value(i)})
			}
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 || math.Abs(float64(len(out))/2e6-0.135) > 0.02 {
		t.Fatalf("oracle kept %d rows of 2M; the example's selectivity changed", len(out))
	}
	return out
}

type emitFunc func(arrow.RecordBatch) error

func (f emitFunc) Emit(b arrow.RecordBatch) error { return f(b) }

// repoRoot is where the test binary started: the repository root.
var repoRoot, _ = os.Getwd()
