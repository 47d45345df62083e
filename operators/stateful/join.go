package stateful

import (
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/zflowdev/zflow/engine"
)

// JoinConfig is the config of the join transform.
type JoinConfig struct {
	How     string     `zflow:"how" enum:"inner,left,right,full,semi,anti,asof" doc:"inner, left, right or full (outer) join; semi (the left rows that have a match) or anti (those that have none: NULL keys never match, so their rows are kept); asof: each left row with the right row of the same on: keys whose time (asof.right) is the greatest at or before its own (asof.left)"`
	On      []string   `zflow:"on" doc:"key columns with the same name on both sides; the output has them once, at the left's place, as SQL's USING (a right or full join fills them from the right side where the left has no row)" example:"[symbol]"`
	LeftOn  []string   `zflow:"left_on" doc:"key columns of the left input, paired in order with right_on (instead of on:); the output keeps both sides' key columns"`
	RightOn []string   `zflow:"right_on" doc:"key columns of the right input, paired with left_on"`
	Suffix  string     `zflow:"suffix" doc:"added to the name of a right column that clashes with a left one"`
	Build   string     `zflow:"build" enum:"auto,left,right" doc:"the side held in memory as the hash table, the other streams past it: auto takes the right input (inputs[1]) as the engine has no size estimates yet; asof always builds the right"`
	Asof    AsofConfig `zflow:"asof" doc:"for how: asof, the time columns and what becomes of left rows without an earlier right row"`
}

// AsofConfig is the time part of an as-of join.
type AsofConfig struct {
	Left          string `zflow:"left" doc:"the left input's time column (integers, floats, dates or timestamps)"`
	Right         string `zflow:"right" doc:"the right input's time column; a right row with a NULL time never matches"`
	KeepUnmatched bool   `zflow:"keep_unmatched" doc:"keep left rows without a match, their right columns NULL (DuckDB's ASOF LEFT JOIN); false drops them (ASOF JOIN)"`
}

// JoinSpec declares join.
func JoinSpec() engine.Spec {
	return engine.Spec{
		Name: "join", Kind: engine.KindTransform, Parallel: true, MinInputs: 2, MaxInputs: 2,
		PortEnds: true, SameInputTwice: true,
		Summary: "hash join two inputs on key columns (inner, left, right, full, semi, anti) or as-of join on a time column",
		Doc: "The build side (the right input unless build: left) is held in memory as a hash table; the other side streams past it, " +
			"batch by batch, and its batches that arrive before the build side has ended wait in memory. Parallel instances share one table, " +
			"built once. Over its memory budget the join spills both sides to hash partitions on disk and joins them one at a time " +
			"(a grace hash join; a partition too big is split again, a single key too big is joined in chunks). NULL keys never match. Key columns of different types are cast to one: integers to the wider integer, integers " +
			"and floats to double, timestamps to the finer unit, a date with a timestamp to the timestamp; strings, large strings and " +
			"dictionaries of strings match as they are. The output is the left columns, then the right ones (without the keys of on:); " +
			"a right column whose name a left one has gets suffix. semi and anti output the left columns only. Output rows come in no " +
			"particular order.",
		Example:   "{type: join, inputs: [trades, symbols], how: inner, on: [symbol]}",
		NewConfig: func() any { return &JoinConfig{How: "inner", Suffix: "_right", Build: "auto"} },
		Build: func(bc *engine.BuildContext, c any) (engine.Factory, error) {
			return newJoinFactory(bc, c.(*JoinConfig))
		},
	}
}

func init() { engine.Register(JoinSpec()) }

// How a join treats the rows of each side.
const (
	sideLeft, sideRight = 0, 1
)

// outCol is one output column: column col of side, or (key ≥ 0) the
// merged key column k of on:, taken from whichever side has a row.
type outCol struct {
	side, col int
	key       int
}

// keyCast is how one key column of one side is made comparable: cast to
// typ (joincast.go; nil when it is already).
type keyCast struct {
	col int
	typ arrow.DataType
}

// joinFactory is a compiled join.
type joinFactory struct {
	cfg      JoinConfig
	how      string
	build    int // the side held in the table; the other probes
	schema   *arrow.Schema
	keys     [2][]keyCast // per side
	keyTypes [2][]arrow.DataType
	out      []outCol
	using    bool // on: (merged keys) rather than left_on/right_on
	// asof: the time columns of each side, cast to one type.
	times  [2]keyCast
	inputs [2]*arrow.Schema
	desc   string
	spill  engine.SpillSettings
}

// DescribeSpill says what the join may spill and where (engine.SpillDescriber).
func (f *joinFactory) DescribeSpill() string {
	return DescribeSpill("both sides' rows by hash partition", f.spill)
}

// sideSchema is the schema of side's batches.
func (f *joinFactory) sideSchema(side int) *arrow.Schema { return f.inputs[side] }

func (f *joinFactory) Schema() *arrow.Schema { return f.schema }

// InputColumns is what the join reads of the side on port
// (engine.ColumnUser): its key columns (and as-of time column), and its
// columns among the outputs read downstream (out; nil, every one). A left
// column whose name a needed right column clashes with is kept too, so
// that the right one keeps its suffix in the narrower plan.
func (f *joinFactory) InputColumns(port int, out []string) []string {
	if out == nil {
		return nil
	}
	in := f.inputs[port]
	used := []string{}
	for _, kc := range f.keys[port] {
		used = append(used, in.Field(kc.col).Name)
	}
	if f.how == "asof" {
		used = append(used, in.Field(f.times[port].col).Name)
	}
	for i, oc := range f.out {
		name := f.schema.Field(i).Name
		if oc.key >= 0 || !slices.Contains(out, name) {
			continue
		}
		src := f.inputs[oc.side].Field(oc.col).Name
		switch {
		case oc.side == port:
			used = append(used, src)
		case port == sideLeft && name != src:
			used = append(used, src) // the left column it clashed with
		}
	}
	return used
}
func (f *joinFactory) Describe() string { return f.desc }

func newJoinFactory(bc *engine.BuildContext, cfg *JoinConfig) (*joinFactory, error) {
	f := &joinFactory{cfg: *cfg, how: cfg.How, build: sideRight, inputs: [2]*arrow.Schema{bc.Inputs[0], bc.Inputs[1]}, spill: bc.Settings.Spill}
	if _, err := ipcOptions(bc.Settings.Spill); err != nil {
		return nil, engine.Errf("settings.spill.compression", "%v", err)
	}
	var errs []error
	fail := func(e *engine.FieldError) { errs = append(errs, e) }
	left, right := bc.Inputs[0], bc.Inputs[1]
	side := [2]*arrow.Schema{left, right}
	var lk, rk []string
	lfield, rfield := "on", "on"
	switch {
	case len(cfg.On) > 0 && (len(cfg.LeftOn) > 0 || len(cfg.RightOn) > 0):
		fail(engine.Errf("on", "give on: or left_on/right_on, not both"))
	case len(cfg.On) > 0:
		lk, rk, f.using = cfg.On, cfg.On, true
	case len(cfg.LeftOn) != len(cfg.RightOn):
		fail(engine.Errf("right_on", "left_on has %d columns and right_on %d: they are paired in order", len(cfg.LeftOn), len(cfg.RightOn)))
	case len(cfg.LeftOn) > 0:
		lk, rk, lfield, rfield = cfg.LeftOn, cfg.RightOn, "left_on", "right_on"
	case cfg.How != "asof":
		fail(engine.Errf("on", "a join needs key columns: on: [a, b] (the same names on both sides) or left_on/right_on"))
	}
	switch cfg.Build {
	case "left":
		f.build = sideLeft
	case "auto", "right", "":
	}
	if cfg.How == "asof" && f.build == sideLeft {
		fail(engine.Errf("build", "an as-of join builds the right side (its rows sorted by time per key); build: left is not possible"))
	}
	if cfg.How != "asof" && (cfg.Asof != AsofConfig{}) {
		fail(engine.Errf("asof", "asof: is for how: asof, not how: %s", cfg.How))
	}
	findCol := func(s *arrow.Schema, input int, field, name string) int {
		idx := s.FieldIndices(name)
		if len(idx) == 1 {
			return idx[0]
		}
		names := make([]string, s.NumFields())
		for i, fl := range s.Fields() {
			names[i] = fl.Name
		}
		msg := fmt.Sprintf("input %q has no column %q", bc.InputIDs[input], name)
		if len(idx) > 1 {
			msg = fmt.Sprintf("input %q has %d columns named %q", bc.InputIDs[input], len(idx), name)
		} else if sug := engine.Suggest(name, names); sug != "" {
			msg += fmt.Sprintf(", did you mean %q?", sug)
		} else {
			msg += " (columns: " + strings.Join(names, ", ") + ")"
		}
		fail(engine.Errf(field, "%s", msg))
		return -1
	}
	ok := len(errs) == 0
	for i := range lk {
		li := findCol(left, 0, fmt.Sprintf("%s.%d", lfield, i), lk[i])
		ri := findCol(right, 1, fmt.Sprintf("%s.%d", rfield, i), rk[i])
		if li < 0 || ri < 0 {
			ok = false
			continue
		}
		lc, rc, err := castPair(left, li, right, ri)
		if err != nil {
			fail(engine.Errf(fmt.Sprintf("%s.%d", rfield, i), "key %q is %s in %q and %q is %s in %q: %v",
				lk[i], left.Field(li).Type, bc.InputIDs[0], rk[i], right.Field(ri).Type, bc.InputIDs[1], err))
			ok = false
			continue
		}
		f.keys[0], f.keys[1] = append(f.keys[0], lc), append(f.keys[1], rc)
	}
	if cfg.How == "asof" {
		switch {
		case cfg.Asof.Left == "" || cfg.Asof.Right == "":
			fail(engine.Errf("asof", "how: asof needs asof: {left: <time column>, right: <time column>}"))
			ok = false
		default:
			li := findCol(left, 0, "asof.left", cfg.Asof.Left)
			ri := findCol(right, 1, "asof.right", cfg.Asof.Right)
			if li < 0 || ri < 0 {
				ok = false
				break
			}
			lc, rc, err := castPair(left, li, right, ri)
			if err == nil && !timeType(typeOf(side[0], lc)) {
				err = fmt.Errorf("an as-of time is an integer, a float, a date or a timestamp")
			}
			if err != nil {
				fail(engine.Errf("asof.right", "time %q is %s in %q and %q is %s in %q: %v",
					cfg.Asof.Left, left.Field(li).Type, bc.InputIDs[0], cfg.Asof.Right, right.Field(ri).Type, bc.InputIDs[1], err))
				ok = false
				break
			}
			f.times = [2]keyCast{lc, rc}
		}
	}
	if !ok || len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	for s := range 2 {
		for _, k := range f.keys[s] {
			f.keyTypes[s] = append(f.keyTypes[s], typeOf(side[s], k))
		}
		if _, err := NewKeyEncoder(f.keyTypes[s]); err != nil {
			return nil, engine.Errf(lfield, "%v", err)
		}
	}
	if err := f.plan(bc, side); err != nil {
		return nil, err
	}
	return f, nil
}

// joinErrors is errs as one error Compile takes apart.
func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return &errList{errs}
}

type errList struct{ errs []error }

func (e *errList) Error() string {
	s := make([]string, len(e.errs))
	for i, err := range e.errs {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}
func (e *errList) Unwrap() []error { return e.errs }

// typeOf is the type key k has once cast.
func typeOf(s *arrow.Schema, k keyCast) arrow.DataType {
	if k.typ != nil {
		return k.typ
	}
	return s.Field(k.col).Type
}

// plan lays out the output columns and the schema.
func (f *joinFactory) plan(bc *engine.BuildContext, side [2]*arrow.Schema) error {
	left, right := side[0], side[1]
	nullable := [2]bool{f.how == "right" || f.how == "full", f.how == "left" || f.how == "full" || (f.how == "asof" && f.cfg.Asof.KeepUnmatched)}
	var fields []arrow.Field
	taken := map[string]bool{}
	isKey := [2]map[int]int{{}, {}}
	for s := range 2 {
		for k, kc := range f.keys[s] {
			isKey[s][kc.col] = k
		}
	}
	for i, fl := range left.Fields() {
		if k, ok := isKey[0][i]; ok && f.using && f.how != "semi" && f.how != "anti" {
			fl.Type = f.keyTypes[0][k]
			fl.Nullable = fl.Nullable || right.Field(f.keys[1][k].col).Nullable
			f.out = append(f.out, outCol{key: k})
		} else {
			fl.Nullable = fl.Nullable || nullable[0]
			f.out = append(f.out, outCol{side: sideLeft, col: i, key: -1})
		}
		fields = append(fields, fl)
		taken[fl.Name] = true
	}
	if f.how != "semi" && f.how != "anti" {
		for i, fl := range right.Fields() {
			if _, ok := isKey[1][i]; ok && f.using {
				continue
			}
			if taken[fl.Name] {
				fl.Name += f.cfg.Suffix
				if taken[fl.Name] {
					return engine.Errf("suffix", "right column %q with suffix %q is %q, which the output already has: choose another suffix", right.Field(i).Name, f.cfg.Suffix, fl.Name)
				}
			}
			fl.Nullable = fl.Nullable || nullable[1]
			taken[fl.Name] = true
			fields = append(fields, fl)
			f.out = append(f.out, outCol{side: sideRight, col: i, key: -1})
		}
	}
	if f.using && len(f.keys[0]) > 0 && (f.build == sideLeft || f.how == "right" || f.how == "full") {
		// The merged key is then taken from the right side for some rows:
		// its type must be the left's.
		for k := range f.keys[0] {
			if !arrow.TypeEqual(f.keyTypes[0][k], f.keyTypes[1][k]) {
				return engine.Errf(fmt.Sprintf("on.%d", k), "key %q is %s in %q and %s in %q: they match, but a %s join%s cannot put both into one column; use left_on/right_on (which keeps both) or cast one side with a project",
					f.cfg.On[k], f.keyTypes[0][k], bc.InputIDs[0], f.keyTypes[1][k], bc.InputIDs[1], f.how, map[bool]string{true: " with build: left", false: ""}[f.build == sideLeft && f.how != "right" && f.how != "full"])
			}
		}
	}
	md := left.Metadata()
	f.schema = arrow.NewSchema(fields, &md)
	build := bc.InputIDs[f.build]
	f.desc = fmt.Sprintf("%s join, build %s", f.how, build)
	if f.using {
		f.desc += " on " + strings.Join(f.cfg.On, ", ")
	} else if len(f.cfg.LeftOn) > 0 {
		f.desc += fmt.Sprintf(" on (%s) = (%s)", strings.Join(f.cfg.LeftOn, ", "), strings.Join(f.cfg.RightOn, ", "))
	}
	if f.how == "asof" {
		f.desc += fmt.Sprintf(", %s >= %s", f.cfg.Asof.Left, f.cfg.Asof.Right)
	}
	return nil
}

// castPair makes column li of left and ri of right comparable: the casts
// to their common type, or why there is none.
func castPair(left *arrow.Schema, li int, right *arrow.Schema, ri int) (keyCast, keyCast, error) {
	lt, rt := left.Field(li).Type, right.Field(ri).Type
	lc, rc := keyCast{col: li}, keyCast{col: ri}
	if arrow.TypeEqual(lt, rt) || sameEncoding(lt, rt) {
		return lc, rc, nil
	}
	common, err := commonType(lt, rt)
	if err != nil {
		return lc, rc, err
	}
	if !arrow.TypeEqual(lt, common) {
		lc.typ = common
	}
	if !arrow.TypeEqual(rt, common) {
		rc.typ = common
	}
	if lt, rt := typeOf(left, lc), typeOf(right, rc); !arrow.TypeEqual(lt, rt) {
		return lc, rc, fmt.Errorf("they cast to %s and %s, not one type; cast one side with a project", lt, rt)
	}
	return lc, rc, nil
}

// stringLike is the family of types keys.go encodes alike: strings (and
// dictionaries of them) as one, binaries as another.
func stringLike(t arrow.DataType) string {
	if d, ok := t.(*arrow.DictionaryType); ok {
		t = d.ValueType
	}
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
		return "string"
	case arrow.BINARY, arrow.LARGE_BINARY, arrow.BINARY_VIEW:
		return "binary"
	}
	return ""
}

// sameEncoding says whether keys.go encodes values of a and b alike, so
// they match with no cast: strings of any layout, a dictionary as its
// value.
func sameEncoding(a, b arrow.DataType) bool {
	if s := stringLike(a); s != "" {
		return s == stringLike(b)
	}
	if d, ok := a.(*arrow.DictionaryType); ok {
		a = d.ValueType
	}
	if d, ok := b.(*arrow.DictionaryType); ok {
		b = d.ValueType
	}
	return arrow.TypeEqual(a, b)
}

func isSigned(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64:
		return true
	}
	return false
}

func isUnsigned(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}

func timeType(t arrow.DataType) bool {
	switch {
	case isSigned(t), isUnsigned(t), isFloat(t):
		return true
	}
	switch t.ID() {
	case arrow.DATE32, arrow.DATE64, arrow.TIMESTAMP:
		return true
	}
	return false
}

// commonType is the type two key columns of different types are compared
// in, as DuckDB would.
func commonType(a, b arrow.DataType) (arrow.DataType, error) {
	width := func(t arrow.DataType) int { return t.(arrow.FixedWidthDataType).BitWidth() }
	signed := map[int]arrow.DataType{8: arrow.PrimitiveTypes.Int8, 16: arrow.PrimitiveTypes.Int16, 32: arrow.PrimitiveTypes.Int32, 64: arrow.PrimitiveTypes.Int64}
	switch {
	case isSigned(a) && isSigned(b), isUnsigned(a) && isUnsigned(b):
		if width(a) >= width(b) {
			return a, nil
		}
		return b, nil
	case isSigned(a) && isUnsigned(b), isUnsigned(a) && isSigned(b):
		s, u := a, b
		if isUnsigned(a) {
			s, u = b, a
		}
		w := max(width(s), 2*width(u))
		if w > 64 {
			return nil, fmt.Errorf("uint64 and a signed integer have no common integer type; cast one side with a project")
		}
		return signed[w], nil
	case (isSigned(a) || isUnsigned(a) || isFloat(a)) && (isSigned(b) || isUnsigned(b) || isFloat(b)):
		return arrow.PrimitiveTypes.Float64, nil
	case a.ID() == arrow.TIMESTAMP && b.ID() == arrow.TIMESTAMP:
		ta, tb := a.(*arrow.TimestampType), b.(*arrow.TimestampType)
		if ta.TimeZone != tb.TimeZone {
			return nil, fmt.Errorf("timestamps of different time zones; cast one side with a project")
		}
		if ta.Unit >= tb.Unit {
			return a, nil
		}
		return b, nil
	case a.ID() == arrow.DATE32 && b.ID() == arrow.TIMESTAMP:
		return b, nil
	case a.ID() == arrow.TIMESTAMP && b.ID() == arrow.DATE32:
		return a, nil
	}
	return nil, fmt.Errorf("these types do not compare; cast one side with a project")
}
