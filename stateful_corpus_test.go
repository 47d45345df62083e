package zflow_test

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
)

// The corpus of the stateful differential test: testdata/stateful/*.txt,
// its format in testdata/stateful/README.md. An entry:
//
//	=== agg_sum_by_k
//	op:  {type: aggregate, inputs: [t], group_by: [k], aggregates: {s: "sum(v)"}}
//	sql: SELECT k, sum(v) AS s FROM t GROUP BY k
//	tol: 1e-9
//
// A line starting with blanks continues the key above it.

// diffCase is one entry of the corpus.
type diffCase struct {
	file string // base name
	line int    // of its === line
	name string
	// ops are the operators in the order written; the last one feeds the
	// sink. A single operator (op: {type: …}) is named "op".
	ops     []diffOp
	opsText string // the op: text as written
	sql     string
	ordered bool    // compare rows in order (sort, top_k); else both sides sorted
	tol     float64 // relative tolerance of float cells
	// approx are columns whose value may differ from the SQL's by a
	// relative error, and within columns that must lie between two of the
	// SQL's columns.
	approx  map[string]float64
	within  []diffWithin
	data    []string // data sets to run on; nil: see runsOn
	allData bool     // data: all
	skip    []string // data sets not to run on
	spill   bool     // rerun with budgets that make the stateful operators spill
	tables  []string // the tables the operators read, sorted
}

type diffOp struct {
	id, typ string
	cfg     yaml.MapSlice
}

// diffWithin says zflow's column col must lie in [lo, hi], two columns of
// the SQL's answer that take col's place in it.
type diffWithin struct{ col, lo, hi string }

func (c *diffCase) where() string { return fmt.Sprintf("%s:%d: %s", c.file, c.line, c.name) }

// defaultTol is the relative tolerance of float cells when an entry says
// none: sums and averages of a few thousand doubles added in another order.
const defaultTol = 1e-9

// readDiffCorpus reads every testdata/stateful/*.txt file.
func readDiffCorpus() ([]*diffCase, error) {
	files, err := filepath.Glob(filepath.Join("testdata", "stateful", "*.txt"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no corpus: testdata/stateful/*.txt matches nothing")
	}
	sort.Strings(files)
	var out []*diffCase
	names := map[string]string{}
	for _, path := range files {
		text, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		cs, err := parseDiffCorpus(filepath.Base(path), string(text))
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if prev, ok := names[c.name]; ok {
				return nil, fmt.Errorf("%s: the name is taken by %s", c.where(), prev)
			}
			names[c.name] = c.where()
		}
		out = append(out, cs...)
	}
	return out, nil
}

// parseDiffCorpus parses one corpus file; file names it in errors.
func parseDiffCorpus(file, text string) ([]*diffCase, error) {
	var (
		out  []*diffCase
		cur  *diffCase
		key  string // the key being read
		val  []string
		from int // line of key
	)
	errf := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...))
	}
	flush := func() error {
		if key == "" {
			return nil
		}
		err := cur.set(key, joinValue(val))
		key, val = "", nil
		if err != nil {
			return errf(from, "%v", err)
		}
		return nil
	}
	finish := func() error {
		if err := flush(); err != nil {
			return err
		}
		if cur == nil {
			return nil
		}
		if err := cur.check(); err != nil {
			return errf(cur.line, "%s: %v", cur.name, err)
		}
		out = append(out, cur)
		return nil
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "==="):
			if err := finish(); err != nil {
				return nil, err
			}
			name := strings.TrimSpace(strings.TrimPrefix(line, "==="))
			if name == "" || strings.ContainsAny(name, " \t@") {
				return nil, errf(n, "%q: a case name is one word without @", name)
			}
			cur = &diffCase{file: file, line: n, name: name, tol: defaultTol, spill: true}
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			if key != "" && trimmed == "" {
				val = append(val, "")
			}
		case line[0] == ' ' || line[0] == '\t':
			if key == "" {
				return nil, errf(n, "a continued line with no key above it")
			}
			val = append(val, line)
		default:
			if cur == nil {
				return nil, errf(n, "%q before the first === line", trimmed)
			}
			if err := flush(); err != nil {
				return nil, err
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, errf(n, "%q: want key: value", trimmed)
			}
			key, val, from = strings.TrimSpace(k), []string{v}, n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return out, nil
}

// joinValue is a key's value from its lines: the text after the key, then
// the continued lines, their common indentation removed when the first
// line is empty (a YAML block).
func joinValue(lines []string) string {
	first := strings.TrimSpace(lines[0])
	rest := lines[1:]
	for len(rest) > 0 && strings.TrimSpace(rest[len(rest)-1]) == "" {
		rest = rest[:len(rest)-1]
	}
	if first != "" {
		return strings.TrimSpace(strings.Join(append([]string{first}, rest...), "\n"))
	}
	common := -1
	for _, l := range rest {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if common < 0 || n < common {
			common = n
		}
	}
	out := make([]string, len(rest))
	for i, l := range rest {
		if len(l) >= common && common > 0 {
			l = l[common:]
		}
		out[i] = l
	}
	return strings.Join(out, "\n")
}

// diffKeys are the keys of an entry.
var diffKeys = []string{"op", "sql", "ordered", "tol", "approx", "within", "data", "skip", "spill"}

// set reads one key of an entry.
func (c *diffCase) set(key, v string) error {
	yesNo := func() (bool, error) {
		switch v {
		case "yes", "true":
			return true, nil
		case "no", "false":
			return false, nil
		}
		return false, fmt.Errorf("%s: %q: want yes or no", key, v)
	}
	var err error
	switch key {
	case "op":
		if c.ops != nil {
			return fmt.Errorf("op: given twice")
		}
		c.opsText = v
		c.ops, err = parseDiffOps(v)
	case "sql":
		if c.sql != "" {
			return fmt.Errorf("sql: given twice")
		}
		if strings.Contains(v, ";") {
			return fmt.Errorf("sql: one statement, no ';'")
		}
		c.sql = v
	case "ordered":
		c.ordered, err = yesNo()
	case "spill":
		c.spill, err = yesNo()
	case "tol":
		c.tol, err = strconv.ParseFloat(v, 64)
		if err == nil && (c.tol < 0 || c.tol >= 1) {
			err = fmt.Errorf("tol: %v: want 0 ≤ tol < 1", c.tol)
		}
	case "approx":
		f := strings.Fields(v)
		if len(f) != 2 {
			return fmt.Errorf("approx: %q: want a column and a relative error bound", v)
		}
		b, perr := strconv.ParseFloat(f[1], 64)
		if perr != nil || b <= 0 {
			return fmt.Errorf("approx: %q: the bound must be a number > 0", f[1])
		}
		if c.approx == nil {
			c.approx = map[string]float64{}
		}
		c.approx[f[0]] = b
	case "within":
		f := strings.Fields(v)
		if len(f) != 3 {
			return fmt.Errorf("within: %q: want zflow's column and the SQL's low and high columns", v)
		}
		c.within = append(c.within, diffWithin{f[0], f[1], f[2]})
	case "data", "skip":
		f := strings.Fields(v)
		if key == "data" && v == "all" {
			c.allData = true
			return nil
		}
		for _, name := range f {
			if !slices.ContainsFunc(diffDataSets, func(d diffDataSet) bool { return d.name == name }) {
				return fmt.Errorf("%s: no data set %q", key, name)
			}
		}
		if key == "data" {
			c.data = f
		} else {
			c.skip = f
		}
	default:
		return fmt.Errorf("unknown key %q (known: %s)", key, strings.Join(diffKeys, ", "))
	}
	return err
}

// check checks a whole entry.
func (c *diffCase) check() error {
	if c.ops == nil {
		return fmt.Errorf("no op:")
	}
	if c.sql == "" {
		return fmt.Errorf("no sql:")
	}
	ids := map[string]bool{}
	tables := map[string]bool{}
	for _, op := range c.ops {
		for _, in := range op.inputs() {
			switch {
			case ids[in]:
			case strings.Contains(in, ".") && ids[in[:strings.LastIndexByte(in, '.')]]: // an output port of one
			case slices.Contains(diffTables, in):
				tables[in] = true
			default:
				return fmt.Errorf("operator %s reads %q, which is neither a table (%s) nor an operator before it",
					op.id, in, strings.Join(diffTables, ", "))
			}
		}
		ids[op.id] = true
	}
	for tb := range tables {
		c.tables = append(c.tables, tb)
	}
	sort.Strings(c.tables)
	return nil
}

// parseDiffOps reads op:'s text: one operator ({type: …}), or a mapping of
// operator ids to operators.
func parseDiffOps(text string) ([]diffOp, error) {
	var m yaml.MapSlice
	if err := yaml.UnmarshalWithOptions([]byte(text), &m, yaml.UseOrderedMap()); err != nil {
		return nil, fmt.Errorf("op: %v", err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("op: empty")
	}
	if _, ok := m.ToMap()["type"]; ok {
		m = yaml.MapSlice{{Key: "op", Value: m}}
	}
	var ops []diffOp
	for _, it := range m {
		id, _ := it.Key.(string)
		cfg, ok := it.Value.(yaml.MapSlice)
		if id == "" || !ok {
			return nil, fmt.Errorf("op: %v: want an operator id and its mapping", it.Key)
		}
		typ, _ := cfg.ToMap()["type"].(string)
		if typ == "" {
			return nil, fmt.Errorf("op: %s has no type", id)
		}
		op := diffOp{id: id, typ: typ, cfg: cfg}
		if len(op.inputs()) == 0 {
			return nil, fmt.Errorf("op: %s has no inputs", id)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// inputs are the ids op reads.
func (op diffOp) inputs() []string {
	switch v := op.cfg.ToMap()["inputs"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// runsOn says whether the entry runs on data set ds: on the data sets it
// names (data:), or on every core data set and diffExtraSets of the
// others, chosen from its name, so that each data set is met by many
// entries without every entry paying for all of them; -stateful.all runs
// every entry on every data set. skip: wins.
func (c *diffCase) runsOn(ds string) bool {
	if slices.Contains(c.skip, ds) {
		return false
	}
	switch {
	case *statefulAll || c.allData:
		return true
	case c.data != nil:
		return slices.Contains(c.data, ds)
	case slices.Contains(diffCoreSets, ds):
		return true
	}
	var extras []string
	for _, d := range diffDataSets {
		if !slices.Contains(diffCoreSets, d.name) {
			extras = append(extras, d.name)
		}
	}
	h := fnv.New32a()
	h.Write([]byte(c.name))
	at := int(h.Sum32() % uint32(len(extras)))
	for i := range diffExtraSets {
		if extras[(at+i*3)%len(extras)] == ds {
			return true
		}
	}
	return false
}

// diffCoreSets are the data sets every entry runs on (unless it names
// its own), and diffExtraSets how many of the others it runs on too.
var diffCoreSets = []string{"uniform1", "empty", "allnull", "onegroup"}

const diffExtraSets = 2
