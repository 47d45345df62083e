package zflow_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/goccy/go-yaml"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/duckdbtest"
)

// TestStatefulDuckDB is the differential test of the stateful operators
// (issue 14): every entry of testdata/stateful/*.txt — an operator config
// and the equivalent DuckDB SQL — runs on every generated data set
// (stateful_data_test.go) as a pipeline (a parquet source per table, the
// operators, a parquet sink), in process, on a checked allocator; then one
// DuckDB session reads each output and computes each SQL answer, and the
// two are compared (stateful_compare_test.go). Entries whose operators
// run as stateful ones are run a second time with budgets so small that
// they spill, and must give the same answer, leave the allocator at zero
// and no file in the temporary directory. The format, the data sets and
// the rules of comparison are in testdata/stateful/README.md.
func TestStatefulDuckDB(t *testing.T) {
	defer goleak.VerifyNone(t)
	db := duckdbtest.Open(t)
	corpus, err := readDiffCorpus()
	if err != nil {
		t.Fatal(err)
	}
	caseRE, dataRE := mustRegexp(t, *statefulCase), mustRegexp(t, *statefulData)
	filtered := *statefulCase != "" || *statefulData != ""

	dir := t.TempDir()
	if *statefulKeep != "" {
		dir = *statefulKeep
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // spill files go under it: checked empty after every run

	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	var combos []*diffCombo
	pending := map[string]int{}  // unregistered operator type: combinations not run
	var pendingCases []*diffCase // their SQL is still checked, on the first data set
	for _, ds := range diffDataSets {
		if !dataRE.MatchString(ds.name) {
			continue
		}
		dsDir := filepath.Join(dir, "data", ds.name)
		wrote := false
		for _, c := range corpus {
			if !caseRE.MatchString(c.name) || !c.runsOn(ds.name) {
				continue
			}
			if typ := unregistered(c); typ != "" {
				pending[typ]++
				if !slices.Contains(pendingCases, c) {
					pendingCases = append(pendingCases, c)
				}
				continue
			}
			if !wrote {
				writeDataSet(t, mem, ds, dsDir)
				wrote = true
			}
			cb := &diffCombo{c: c, ds: ds, dataDir: dsDir}
			cb.out = filepath.Join(dir, "out", ds.name, c.name+".parquet")
			cb.run(t, "", tmp)
			if c.spill && c.stateful() && ds.rows >= diffSpillMinRows && c.spillable() {
				cb.spilled = &diffCombo{c: c, ds: ds, dataDir: dsDir,
					out: filepath.Join(dir, "out", ds.name, c.name+".spill.parquet")}
				cb.spilled.run(t, diffSpillBudget, tmp)
			}
			combos = append(combos, cb)
		}
	}
	mem.AssertSize(t, 0)
	for key := range knownStatefulDifferences {
		name, _, _ := strings.Cut(key, "@")
		if !slices.ContainsFunc(corpus, func(c *diffCase) bool { return c.name == name }) {
			t.Errorf("knownStatefulDifferences lists %q, which names no corpus entry", key)
		}
	}

	// DuckDB, first round: the columns and types of both sides (LIMIT 0),
	// and the SQL of the entries that cannot run yet, on the first data set,
	// so that a corpus error shows before its operator lands.
	var sess duckSession
	for _, cb := range combos {
		sess.use(cb.ds.name, cb.dataDir)
		cb.sqlAt = sess.add("SELECT * FROM (" + cb.c.sql + "\n) LIMIT 0")
		cb.outAt = cb.readOut(&sess, " LIMIT 0")
		if cb.spilled != nil {
			cb.spilled.outAt = cb.spilled.readOut(&sess, " LIMIT 0")
		}
	}
	pendingAt := map[*diffCase]int{}
	if len(pendingCases) > 0 {
		first := diffDataSets[0]
		firstDir := filepath.Join(dir, "data", first.name)
		writeDataSet(t, mem, first, firstDir)
		sess.use(first.name, firstDir)
		for _, c := range pendingCases {
			pendingAt[c] = sess.add("SELECT * FROM (" + c.sql + "\n) LIMIT 0")
		}
	}
	res1 := sess.run(t, db)

	// Second round: both sides into temporary tables, compared by position.
	sess = duckSession{}
	for _, cb := range combos {
		cb.mapColumns(res1)
		if cb.problems1 != nil {
			continue
		}
		sess.use(cb.ds.name, cb.dataDir)
		cb.ansAt = sess.add("CREATE OR REPLACE TEMP TABLE __a AS " + cb.c.answerSQL())
		for _, x := range []*diffCombo{cb, cb.spilled} {
			if x != nil && x.problems1 == nil {
				x.loadAt = x.readOut(&sess, "")
				x.cmpAt = sess.add(compareSQL(x.cols, "__a", "__z"))
			}
		}
	}
	res2 := sess.run(t, db)

	var zflowTime time.Duration
	byDS := map[string]time.Duration{}
	for _, cb := range combos {
		zflowTime += cb.elapsed
		byDS[cb.ds.name] += cb.elapsed
		if cb.spilled != nil {
			zflowTime += cb.spilled.elapsed
			byDS[cb.ds.name] += cb.spilled.elapsed
		}
	}
	var perDS []string
	for _, ds := range diffDataSets {
		if d, ok := byDS[ds.name]; ok {
			perDS = append(perDS, fmt.Sprintf("%s %s", ds.name, d.Round(time.Millisecond)))
		}
	}
	t.Logf("zflow: %d runs in %s (%s)", len(combos)+countSpilled(combos), zflowTime.Round(time.Millisecond), strings.Join(perDS, ", "))
	var ran, stateful, spilled, failed, knownDiff int
	reruns, spilledBy := map[string]int{}, map[string]int{} // by operator type: spilling reruns, and those that spilled
	for _, cb := range combos {
		if cb.spilled != nil {
			for typ, files := range cb.spilled.spills {
				reruns[typ]++
				if files > 0 {
					spilledBy[typ]++
				}
			}
		}
		ran++
		if cb.c.stateful() {
			stateful++
		}
		problems := cb.check(res2, cb)
		if cb.spilled != nil {
			spilled++
			for _, p := range cb.spilled.check(res2, cb) {
				problems = append(problems, "spilling ("+diffSpillBudget+" budgets): "+p)
			}
		}
		key := cb.c.name + "@" + cb.ds.name
		reason, isKnown := knownStatefulDifferences[key]
		if !isKnown {
			reason, isKnown = knownStatefulDifferences[cb.c.name]
		}
		switch {
		case isKnown && len(problems) == 0:
			t.Errorf("%s on %s: listed as a known difference (%s) but agrees with DuckDB: remove it from knownStatefulDifferences",
				cb.c.where(), cb.ds.name, reason)
		case isKnown:
			knownDiff++
			t.Logf("%s on %s: known difference (%s):\n\t%s", cb.c.where(), cb.ds.name, reason, strings.Join(problems, "\n\t"))
		case len(problems) > 0:
			failed++
			t.Errorf("%s", cb.report(problems))
		}
	}
	for _, c := range pendingCases {
		if r := res1[pendingAt[c]]; r.Err != "" {
			t.Errorf("%s: pending, but its SQL fails in DuckDB: %s\n%s", c.where(), firstLineOf(r.Err), indent(c.sql))
		}
	}
	var pend []string
	for typ, n := range pending {
		pend = append(pend, fmt.Sprintf("%s: %d", typ, n))
	}
	sort.Strings(pend)
	t.Logf("%d combinations of %d entries × %d data sets run and checked (%d with stateful operators, %d of them rerun spilling): %d fail, %d known differences",
		ran, len(corpus), len(diffDataSets), stateful, spilled, failed, knownDiff)
	for _, typ := range statefulTypes {
		if reruns[typ] == 0 {
			continue
		}
		t.Logf("%s: %d of %d spilling reruns spilled", typ, spilledBy[typ], reruns[typ])
		if spilledBy[typ] == 0 && !filtered && !slices.Contains(diffNeverSpills, typ) {
			t.Errorf("%s never spilled in %d reruns with %s budgets", typ, reruns[typ], diffSpillBudget)
		}
	}
	for typ, why := range diffNoSpillYet {
		t.Logf("%s: no spilling reruns: %s", typ, why)
	}
	if len(pend) > 0 {
		t.Logf("pending, their operator type is not registered: %s", strings.Join(pend, ", "))
	}
	// The minimum counts only what ran; it applies once every operator the
	// corpus names is registered (until then the pending ones are listed).
	switch {
	case filtered:
	case len(pending) > 0:
		t.Logf("the minimum of %d combinations is checked once no entry is pending: %d ran", statefulMinCombos, ran)
	case stateful < statefulMinCombos:
		t.Errorf("only %d combinations with stateful operators ran, want at least %d", stateful, statefulMinCombos)
	}
}

var (
	statefulCase = flag.String("stateful.case", "", "TestStatefulDuckDB: run only the corpus entries whose name matches this regexp")
	statefulData = flag.String("stateful.data", "", "TestStatefulDuckDB: run only on the data sets whose name matches this regexp")
	statefulAll  = flag.Bool("stateful.all", false, "TestStatefulDuckDB: run every entry on every data set (default: the core data sets and two others per entry)")
	statefulKeep = flag.String("stateful.keep", "", "TestStatefulDuckDB: write the data sets and outputs under this directory and keep them, to rerun a case by hand")
)

// knownStatefulDifferences are the disagreements with DuckDB that are
// understood, keyed by entry name (every data set) or name@dataset, each
// with its reason. A listed combination still runs: its mismatches are
// logged, not failed, and the test fails when it agrees (the entry is
// stale) or when no corpus entry has the name. Keep this list tiny.
var knownStatefulDifferences = map[string]string{
	// The expression language's, met here because nan11 has NaN in f.
	"filter_float_date@nan11": "NaN > 500: DuckDB true (NaN is the largest double), zflow false (IEEE 754)",
	"agg_filter@nan11":        "FILTER (WHERE f > 100) with NaN in f: DuckDB true (NaN is the largest double), zflow false (IEEE 754)",
}

// statefulTypes are the operator types that keep state, so may spill: an
// entry using one is rerun with diffSpillBudget on each of them.
var statefulTypes = []string{"aggregate", "join", "sort", "top_k", "distinct", "dedupe", "window", "lookup_join"}

// diffNeverSpills are the stateful types that keep bounded state by
// design and need not spill: top_k holds k rows (and fails, saying so,
// when they do not fit its budget); lookup_join holds an index of the
// table's keys (and fails, saying so, when it does not fit) and a cache
// of row groups that evicts rather than spills.
var diffNeverSpills = []string{"top_k", "lookup_join"}

// diffNoSpillYet are the stateful types that cannot spill yet, with why:
// their entries get no spilling rerun (the log says how many were left
// out) and TestStatefulSpillFailures leaves them out. An entry here is an
// open gap of issue 14, not a design: remove it when the type spills.
var diffNoSpillYet = map[string]string{}

// spillable says whether c's spilling rerun can run: none of its operators
// is a type that cannot spill yet.
func (c *diffCase) spillable() bool {
	return !slices.ContainsFunc(c.ops, func(op diffOp) bool { _, no := diffNoSpillYet[op.typ]; return no })
}

// diffSpillBudget is the memory budget of every stateful operator in the
// spilling rerun, and diffSpillBatchRows its settings.batch_rows: the
// budget holds about five batches of t (1280 rows), so an operator that
// keeps its input (sort) spills on every data set of 1500 rows or more,
// and still has room to merge several runs at once.
const (
	diffSpillBudget    = "128KiB"
	diffSpillBatchRows = 256
	// diffSpillMinRows: data sets with fewer rows of t are not rerun
	// spilling (empty, one): nothing to spill.
	diffSpillMinRows = 1500
)

// statefulMinCombos is the fewest combinations the test accepts (issue 14).
const statefulMinCombos = 300

// diffBatchRows is settings.batch_rows of every pipeline: not a multiple
// of the data sets' row groups (1500), so batches have several sizes.
const diffBatchRows = 1024

func (c *diffCase) stateful() bool {
	return slices.ContainsFunc(c.ops, func(op diffOp) bool { return slices.Contains(statefulTypes, op.typ) })
}

// unregistered returns the first operator type of c that is not
// registered, or "".
func unregistered(c *diffCase) string {
	for _, op := range c.ops {
		if _, err := engine.DefaultRegistry.Lookup(engine.KindTransform, op.typ); err != nil {
			return op.typ
		}
	}
	return ""
}

// diffCombo is one entry on one data set: zflow's run, and where DuckDB's
// answers are among the session's results.
type diffCombo struct {
	c       *diffCase
	ds      diffDataSet
	dataDir string
	out     string // zflow's output Parquet
	yaml    string // the pipeline run
	runErr  error  // the run's error
	// problems are found by the run itself: bytes left on the allocator, a
	// file left in the temporary directory; problems1 by the first round
	// (errors, columns, types): nil when the rows can be compared.
	problems  []string
	problems1 []string
	cols      []diffCol
	elapsed   time.Duration
	spilled   *diffCombo       // the spilling rerun, nil when there is none
	spills    map[string]int64 // spill files the run's stateful operators wrote, by type
	// Indexes among the results: the first round's LIMIT 0 of the SQL and
	// of zflow's output (-1 when the run failed); the second round's
	// answer, zflow's output loaded, and the comparison.
	sqlAt, outAt         int
	ansAt, loadAt, cmpAt int
}

// run builds the pipeline (every stateful operator with a memory budget
// when budget is not "") and runs it on a checked allocator, then checks
// that nothing was left: bytes on the allocator, files in tmp.
func (cb *diffCombo) run(t *testing.T, budget, tmp string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(cb.out), 0o755); err != nil {
		t.Fatal(err)
	}
	cb.yaml = diffPipeline(cb.c, cb.dataDir, cb.out, budget)
	p, err := zflow.Parse([]byte(cb.yaml), cb.c.name+".yaml")
	if err != nil {
		cb.runErr = err
		return
	}
	checked := memory.NewCheckedAllocator(memory.NewGoAllocator())
	start := time.Now()
	sum, err := p.Run(t.Context(), zflow.WithAllocator(checked))
	cb.runErr, cb.elapsed = err, time.Since(start)
	cb.spills = map[string]int64{}
	for _, op := range cb.c.ops {
		if slices.Contains(statefulTypes, op.typ) {
			cb.spills[op.typ] += spillFiles(sum.Op(op.id))
		}
	}
	if n := checked.CurrentAlloc(); n != 0 {
		cb.problems = append(cb.problems, fmt.Sprintf("%d bytes still allocated after the run", n))
	}
	if left := filesUnder(tmp); len(left) > 0 {
		cb.problems = append(cb.problems, fmt.Sprintf("the run left %s in the temporary directory", strings.Join(left, ", ")))
		for _, f := range left {
			os.RemoveAll(filepath.Join(tmp, f))
		}
	}
}

func countSpilled(combos []*diffCombo) int {
	n := 0
	for _, cb := range combos {
		if cb.spilled != nil {
			n++
		}
	}
	return n
}

// spillFiles is the number of spill files the summary says op wrote. It
// reads the summary's JSON form ("spill": {"files": N}), which says
// nothing for an operator that did not spill.
func spillFiles(op *engine.OpStats) int64 {
	if op == nil {
		return 0
	}
	b, err := json.Marshal(op)
	if err != nil {
		return 0
	}
	var v struct {
		Spill struct {
			Files int64 `json:"files"`
		} `json:"spill"`
	}
	json.Unmarshal(b, &v)
	return v.Spill.Files
}

// filesUnder lists what is in dir (relative names), nothing when it is
// empty or missing.
func filesUnder(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err == nil && path != dir {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// readOut adds the statement that reads zflow's output, sorted like the
// SQL's answer, with tail appended, and returns its index; -1 when the run
// failed. Without a tail, it loads the output into the temporary table __z.
func (cb *diffCombo) readOut(sess *duckSession, tail string) int {
	if cb.runErr != nil {
		return -1
	}
	q := fmt.Sprintf("SELECT * FROM read_parquet(%s) ORDER BY ALL", sqlQuote(cb.out))
	if cb.c.ordered {
		q = fmt.Sprintf("SELECT * EXCLUDE (file_row_number) FROM read_parquet(%s, file_row_number = true) ORDER BY file_row_number",
			sqlQuote(cb.out))
	}
	if tail == "" {
		return sess.add("CREATE OR REPLACE TEMP TABLE __z AS " + q)
	}
	return sess.add(q + tail)
}

// answerSQL is the SQL as run: sorted by every column when the entry is
// unordered (zflow's output is sorted the same way).
func (c *diffCase) answerSQL() string {
	if c.ordered {
		return c.sql
	}
	return "SELECT * FROM (" + c.sql + "\n) ORDER BY ALL"
}

// mapColumns reads the first round: errors on either side, and zflow's
// columns against the SQL's. It sets problems1 (nil when the rows can be
// compared) and cols, for cb and its spilling rerun.
func (cb *diffCombo) mapColumns(res []duckdbtest.Result) {
	d := res[cb.sqlAt]
	for _, x := range []*diffCombo{cb, cb.spilled} {
		if x == nil {
			continue
		}
		switch {
		case d.Err != "" && x.runErr != nil:
			x.problems1 = []string{fmt.Sprintf("fails in both: zflow: %v; DuckDB: %s", x.runErr, firstLineOf(d.Err))}
		case d.Err != "":
			x.problems1 = []string{"DuckDB fails on the SQL, zflow does not: " + firstLineOf(d.Err)}
		case x.runErr != nil:
			x.problems1 = []string{fmt.Sprintf("zflow fails, DuckDB does not: %v", x.runErr)}
		case res[x.outAt].Err != "":
			x.problems1 = []string{"DuckDB cannot read zflow's output: " + firstLineOf(res[x.outAt].Err)}
		default:
			x.cols, x.problems1 = mapColumns(cb.c, res[x.outAt], d)
		}
	}
}

// check returns what differs: the run's own problems, the first round's,
// then the comparison's; parent holds the answer (cb itself, or the run
// cb is the spilling rerun of).
func (cb *diffCombo) check(res []duckdbtest.Result, parent *diffCombo) []string {
	problems := slices.Clone(cb.problems)
	if cb.problems1 != nil {
		return append(problems, cb.problems1...)
	}
	if parent.problems1 != nil {
		return problems // the answer could not be computed: said once, for parent
	}
	for _, at := range []int{parent.ansAt, cb.loadAt, cb.cmpAt} {
		if res[at].Err != "" {
			return append(problems, "DuckDB: "+firstLineOf(res[at].Err))
		}
	}
	return append(problems, readCompare(cb.cols, res[cb.cmpAt])...)
}

// duckSession collects the statements of one DuckDB session, with views
// of a data set's tables before the statements that read them.
type duckSession struct {
	stmts []string
	ds    string // the data set the views show
	views []int
}

func (s *duckSession) add(q string) int { s.stmts = append(s.stmts, q); return len(s.stmts) - 1 }

// use makes the tables of data set name, in dir, the ones the next
// statements read.
func (s *duckSession) use(name, dir string) {
	if s.ds == name {
		return
	}
	s.ds = name
	for _, tb := range diffTables {
		s.views = append(s.views, s.add(fmt.Sprintf("CREATE OR REPLACE VIEW %s AS FROM read_parquet(%s)", tb, sqlQuote(filepath.Join(dir, tb+".parquet")))))
	}
}

// run runs the session, failing t when a view cannot be made.
func (s *duckSession) run(t *testing.T, db *duckdbtest.DB) []duckdbtest.Result {
	t.Helper()
	start := time.Now()
	res := db.Run(t, s.stmts...)
	t.Logf("DuckDB: %d statements in %s", len(s.stmts), time.Since(start).Round(time.Millisecond))
	for _, i := range s.views {
		if res[i].Err != "" {
			t.Fatalf("DuckDB cannot read a data set: %s: %s", s.stmts[i], res[i].Err)
		}
	}
	return res
}

// report is the failure message of a combination: where, what, and how to
// rerun it.
func (cb *diffCombo) report(problems []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s on data set %s (seed %d, %d rows):\n\t%s\n", cb.c.where(), cb.ds.name, cb.ds.seed, cb.ds.rows,
		strings.Join(problems, "\n\t"))
	fmt.Fprintf(&b, "rerun: go test -count=1 -run 'TestStatefulDuckDB$' . -args -stateful.case='^%s$' -stateful.data='^%s$' -stateful.keep=/tmp/stateful\n",
		regexp.QuoteMeta(cb.c.name), regexp.QuoteMeta(cb.ds.name))
	y := cb.yaml
	if cb.spilled != nil && cb.spilled.yaml != "" {
		y = cb.spilled.yaml
	}
	fmt.Fprintf(&b, "pipeline:\n%s\nsql (DuckDB, over the same Parquet files as tables):\n%s", indent(y), indent(cb.c.sql))
	return b.String()
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// diffPipeline is the pipeline of entry c over the data set in dataDir:
// a parquet source per table it reads, its operators (stateful ones with
// memory: {budget: budget} when budget is not ""), a parquet sink to out.
func diffPipeline(c *diffCase, dataDir, out, budget string) string {
	var sources, ops yaml.MapSlice
	for _, tb := range c.tables {
		sources = append(sources, yaml.MapItem{Key: tb, Value: yaml.MapSlice{
			{Key: "type", Value: "parquet"}, {Key: "path", Value: filepath.Join(dataDir, tb+".parquet")}}})
	}
	for _, op := range c.ops {
		cfg := op.cfg
		if op.typ == "lookup_join" { // table: names a table of the data set
			cfg = slices.Clone(cfg)
			for i, it := range cfg {
				if name, ok := it.Value.(string); ok && it.Key == "table" {
					cfg[i].Value = filepath.Join(dataDir, name+".parquet")
				}
			}
		}
		if budget != "" && slices.Contains(statefulTypes, op.typ) {
			cfg = append(slices.Clone(cfg), yaml.MapItem{Key: "memory", Value: yaml.MapSlice{{Key: "budget", Value: budget}}})
		}
		ops = append(ops, yaml.MapItem{Key: op.id, Value: cfg})
	}
	last := c.ops[len(c.ops)-1].id
	batchRows := diffBatchRows
	if budget != "" {
		batchRows = diffSpillBatchRows
	}
	doc := yaml.MapSlice{
		{Key: "version", Value: 1},
		{Key: "name", Value: "stateful_diff"},
		{Key: "settings", Value: yaml.MapSlice{{Key: "batch_rows", Value: batchRows}}},
		{Key: "sources", Value: sources},
		{Key: "operators", Value: ops},
		{Key: "sinks", Value: yaml.MapSlice{{Key: "out", Value: yaml.MapSlice{
			{Key: "type", Value: "parquet"}, {Key: "inputs", Value: []string{last}}, {Key: "path", Value: out}}}}},
	}
	b, err := yaml.MarshalWithOptions(doc, yaml.IndentSequence(true))
	if err != nil {
		panic(fmt.Sprintf("stateful diff: marshal the pipeline of %s: %v", c.name, err))
	}
	return string(b)
}

func mustRegexp(t *testing.T, s string) *regexp.Regexp {
	t.Helper()
	re, err := regexp.Compile(s)
	if err != nil {
		t.Fatalf("bad regexp %q: %v", s, err)
	}
	return re
}

// sqlQuote quotes s as a SQL string literal.
func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// TestParseDiffCorpus checks the corpus format's reader.
func TestParseDiffCorpus(t *testing.T) {
	for _, tc := range []struct{ name, text, err string }{
		{"ok", "# c\n=== a\nop: {type: filter, inputs: [t], where: \"k > 1\"}\nsql: SELECT *\n  FROM t\nordered: yes\ntol: 1e-6\n", ""},
		{"chain", "=== a\nop:\n  p: {type: project, inputs: [t]}\n  q: {type: filter, inputs: [p], where: x}\nsql: S\n", ""},
		{"unknown key", "=== a\nop: {type: f, inputs: [t]}\nsql: S\nwhat: 1\n", `x.txt:4: unknown key "what"`},
		{"no sql", "=== a\nop: {type: f, inputs: [t]}\n", "x.txt:1: a: no sql:"},
		{"bad input", "=== a\nop: {type: f, inputs: [nope]}\nsql: S\n", `x.txt:1: a: operator op reads "nope"`},
		{"no inputs", "=== a\nop: {type: f}\nsql: S\n", "x.txt:2: op: op has no inputs"},
		{"semicolon", "=== a\nop: {type: f, inputs: [t]}\nsql: S; T\n", "x.txt:3: sql: one statement"},
		{"before case", "op: x\n", `x.txt:1: "op: x" before the first === line`},
		{"bad data", "=== a\nop: {type: f, inputs: [t]}\nsql: S\ndata: nowhere\n", `x.txt:4: data: no data set "nowhere"`},
		{"bad name", "=== a b\n", `x.txt:1: "a b": a case name is one word`},
		{"bad yes", "=== a\nop: {type: f, inputs: [t]}\nsql: S\nordered: maybe\n", `x.txt:4: ordered: "maybe": want yes or no`},
		{"bad within", "=== a\nop: {type: f, inputs: [t]}\nsql: S\nwithin: q lo\n", "x.txt:4: within:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := parseDiffCorpus("x.txt", tc.text)
			switch {
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
				t.Fatalf("error %v, want one starting %q", err, tc.err)
			case tc.err == "" && len(cs) != 1:
				t.Fatalf("%d cases", len(cs))
			}
		})
	}
	cs, err := parseDiffCorpus("x.txt", "=== a\nop:\n  p: {type: project, inputs: [t]}\n  q: {type: filter, inputs: [p, dim], where: x}\nsql: SELECT 1\n  FROM t\n")
	if err != nil {
		t.Fatal(err)
	}
	c := cs[0]
	if len(c.ops) != 2 || c.ops[1].id != "q" || c.ops[1].typ != "filter" || !slices.Equal(c.tables, []string{"dim", "t"}) || c.sql != "SELECT 1\n  FROM t" {
		t.Errorf("parsed %+v", c)
	}
	y := diffPipeline(c, "/d", "/o.parquet", "1KiB")
	if !strings.Contains(y, "inputs:\n      - q\n") || strings.Contains(y, "1KiB") {
		t.Errorf("the sink does not read q, or a budget went to an operator that keeps no state:\n%s", y)
	}
}
