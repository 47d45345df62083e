package operators

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/coltype"
)

// GenerateConfig configures the generate source.
type GenerateConfig struct {
	Rows      int64            `zflow:"rows" required:"true" doc:"total number of rows" example:"1000000"`
	Seed      int64            `zflow:"seed" doc:"seed; the same seed gives the same data whatever the batch size or parallelism"`
	BatchRows int              `zflow:"batch_rows" doc:"rows per batch; 0 means settings.batch_rows"`
	Columns   []GenerateColumn `zflow:"columns" required:"true" doc:"the columns to generate"`
}

// GenerateColumn describes one generated column.
type GenerateColumn struct {
	Name        string        `zflow:"name" required:"true" doc:"column name"`
	Type        string        `zflow:"type" required:"true" doc:"column type (timestamp is microseconds, UTC)" enum:"int64,int32,float64,string,bool,timestamp"`
	Min         float64       `zflow:"min" doc:"numbers: smallest value; min and max both 0 mean 0..1000000 for integers, 0..1 for floats"`
	Max         float64       `zflow:"max" doc:"numbers: largest value (inclusive for integers)"`
	Cardinality int           `zflow:"cardinality" doc:"number of distinct values: strings are <prefix>0000, <prefix>0001, ... (default 100); numbers are evenly spaced in [min, max] (default: any value)"`
	Values      []string      `zflow:"values" doc:"strings: draw uniformly from these values instead"`
	Prefix      string        `zflow:"prefix" doc:"strings: prefix of the generated values (default sym_)"`
	Sequence    bool          `zflow:"sequence" doc:"integers: min + row number, wrapping after max, instead of random values"`
	NullRatio   float64       `zflow:"null_ratio" doc:"fraction of null values, from 0 to 1"`
	Start       string        `zflow:"start" doc:"timestamps: the first row's value, RFC 3339 (default 2024-01-01T00:00:00Z); row i holds start + i*step"`
	Step        time.Duration `zflow:"step" doc:"timestamps: increment per row (default 1ms)"`
	Jitter      time.Duration `zflow:"jitter" doc:"timestamps: each row's value moved by up to this much either way (uniform, from the seed), so that rows come out of time order as events do"`
}

// GenerateSpec is the spec of the generate source.
func GenerateSpec() engine.Spec {
	return engine.Spec{
		Name:    "generate",
		Kind:    engine.KindSource,
		Summary: "deterministic synthetic rows from a seed and a column list",
		Doc: "Every value is a hash of (seed, column, row number), so the data does not depend on the " +
			"batch size, and parallel instances split the rows into contiguous ranges.",
		Example: `type: generate
rows: 1000000
seed: 7
columns:
  - {name: symbol, type: string, cardinality: 500}
  - {name: price, type: float64, min: 1, max: 500}
  - {name: qty, type: int64, min: 1, max: 1000, null_ratio: 0.01}
  - {name: ts, type: timestamp, start: "2024-01-02T09:30:00Z", step: 1ms}`,
		Parallel:  true,
		Shardable: true,
		NewConfig: func() any { return &GenerateConfig{Seed: 1} },
		Build:     buildGenerate,
	}
}

func init() { engine.Register(GenerateSpec()) }

type genKind uint8

const (
	genInt64 genKind = iota
	genInt32
	genFloat64
	genString
	genBool
	genTimestamp
)

// genCol generates one column. Its values are pure functions of the row
// number.
type genCol struct {
	kind     genKind
	dt       arrow.DataType
	salt     uint64 // value stream
	nullSalt uint64 // null stream
	nullCut  uint64 // a row is null when its null hash is < nullCut
	allNull  bool

	imin   int64
	ispan  uint64 // number of integer values, 0 meaning 2^64
	card   uint64
	stride int64
	seq    bool

	fmin, fspan, fstep float64

	dict []byte  // string values, concatenated
	doff []int32 // len card+1

	tsStart, tsStep, tsJitter int64
}

type generateFactory struct {
	cfg    GenerateConfig
	schema *arrow.Schema
	cols   []genCol
}

const genGolden = 0x9E3779B97F4A7C15

// mix64 is the splitmix64 finalizer: a cheap, well-distributed hash.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func (g *genCol) hash(row int64) uint64 { return mix64(g.salt + uint64(row)*genGolden) }

// genBelow returns a uniform value in [0, n) from h (Lemire's multiply-shift).
func genBelow(h, n uint64) uint64 {
	hi, _ := bits.Mul64(h, n)
	return hi
}

func buildGenerate(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*GenerateConfig)
	var errs []error
	if cfg.Rows < 0 {
		errs = append(errs, engine.Errf("rows", "must be ≥ 0, got %d", cfg.Rows))
	}
	if err := checkBatchRows(cfg.BatchRows); err != nil {
		errs = append(errs, err)
	}
	if len(cfg.Columns) == 0 {
		errs = append(errs, engine.Errf("columns", "at least one column is required"))
	}
	f := &generateFactory{cfg: cfg}
	fields := make([]arrow.Field, 0, len(cfg.Columns))
	seen := map[string]bool{}
	for i, col := range cfg.Columns {
		p := fmt.Sprintf("columns.%d", i)
		if col.Name == "" {
			errs = append(errs, engine.Errf(p+".name", "column name is empty"))
		} else if seen[col.Name] {
			errs = append(errs, engine.Errf(p+".name", "duplicate column %q", col.Name))
		}
		seen[col.Name] = true
		g, err := newGenCol(p, i, cfg.Seed, col)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.cols = append(f.cols, g)
		fields = append(fields, arrow.Field{Name: col.Name, Type: g.dt, Nullable: true})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	f.schema = arrow.NewSchema(fields, nil)
	return f, nil
}

func newGenCol(p string, idx int, seed int64, c GenerateColumn) (genCol, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, engine.Errf(p+"."+field, format, args...))
	}
	g := genCol{}
	g.salt = mix64(mix64(uint64(seed)^0x6A09E667F3BCC909) + uint64(idx+1)*genGolden)
	g.nullSalt = mix64(g.salt ^ 0x5851F42D4C957F2D)
	switch c.Type {
	case "int64":
		g.kind, g.dt = genInt64, arrow.PrimitiveTypes.Int64
	case "int32":
		g.kind, g.dt = genInt32, arrow.PrimitiveTypes.Int32
	case "float64":
		g.kind, g.dt = genFloat64, arrow.PrimitiveTypes.Float64
	case "string":
		g.kind, g.dt = genString, arrow.BinaryTypes.String
	case "bool":
		g.kind, g.dt = genBool, arrow.FixedWidthTypes.Boolean
	case "timestamp":
		g.kind, g.dt = genTimestamp, coltype.Timestamp
	default:
		bad("type", "unknown type %q (known: %s)", c.Type, genTypeNames)
		return g, errors.Join(errs...)
	}
	switch {
	case math.IsNaN(c.NullRatio) || c.NullRatio < 0 || c.NullRatio > 1:
		bad("null_ratio", "must be between 0 and 1, got %v", c.NullRatio)
	case c.NullRatio >= 1:
		g.allNull = true
	case c.NullRatio > 0:
		g.nullCut = uint64(c.NullRatio * (1 << 64))
		if g.nullCut == 0 {
			g.nullCut = 1
		}
	}
	isInt := g.kind == genInt64 || g.kind == genInt32
	isNum := isInt || g.kind == genFloat64
	if !isNum && (c.Min != 0 || c.Max != 0) {
		bad("min", "min and max apply to numeric columns, not %s", c.Type)
	}
	if g.kind != genString && len(c.Values) > 0 {
		bad("values", "values apply to string columns, not %s", c.Type)
	}
	if g.kind != genString && c.Prefix != "" {
		bad("prefix", "prefix applies to string columns, not %s", c.Type)
	}
	if !isInt && c.Sequence {
		bad("sequence", "sequence applies to integer columns, not %s", c.Type)
	}
	if g.kind != genTimestamp && (c.Start != "" || c.Step != 0 || c.Jitter != 0) {
		bad("start", "start, step and jitter apply to timestamp columns, not %s", c.Type)
	}
	if c.Cardinality < 0 {
		bad("cardinality", "must be ≥ 0, got %d", c.Cardinality)
	} else if c.Cardinality > 0 && (g.kind == genBool || g.kind == genTimestamp) {
		bad("cardinality", "cardinality does not apply to %s columns", c.Type)
	}
	if len(errs) > 0 {
		return g, errors.Join(errs...)
	}
	g.card = uint64(c.Cardinality)

	switch g.kind {
	case genInt64, genInt32:
		lo, hi := c.Min, c.Max
		if lo == 0 && hi == 0 {
			hi = 1_000_000
		}
		limLo, limHi := float64(math.MinInt64), float64(math.MaxInt64)
		if g.kind == genInt32 {
			limLo, limHi = math.MinInt32, math.MaxInt32
		}
		switch {
		case lo != math.Trunc(lo) || hi != math.Trunc(hi):
			bad("min", "min and max must be integers for %s columns (got %v, %v)", c.Type, lo, hi)
		case lo < limLo || hi > limHi:
			bad("min", "min and max must lie in the %s range (got %v, %v)", c.Type, lo, hi)
		case lo > hi:
			bad("min", "min %v is greater than max %v", lo, hi)
		}
		if len(errs) > 0 {
			return g, errors.Join(errs...)
		}
		g.imin = int64(lo)
		imax := int64(hi)
		if hi >= float64(math.MaxInt64) {
			imax = math.MaxInt64
		}
		g.ispan = uint64(imax-g.imin) + 1 // wraps to 0 for the full range
		g.seq = c.Sequence
		if g.card > 0 {
			if g.seq {
				bad("cardinality", "cardinality and sequence are exclusive")
			} else if g.ispan != 0 && g.card > g.ispan {
				bad("cardinality", "%d distinct values do not fit in [%d, %d]", g.card, g.imin, imax)
			} else if g.card == 1 {
				g.stride = 0
			} else if g.ispan == 0 {
				g.stride = int64(math.MaxUint64 / g.card)
			} else {
				g.stride = int64(g.ispan / g.card)
			}
		}
	case genFloat64:
		lo, hi := c.Min, c.Max
		if lo == 0 && hi == 0 {
			hi = 1
		}
		if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
			bad("min", "min and max must be finite")
		} else if lo > hi {
			bad("min", "min %v is greater than max %v", lo, hi)
		}
		g.fmin, g.fspan = lo, hi-lo
		if g.card > 1 {
			g.fstep = g.fspan / float64(g.card-1)
		}
	case genString:
		if err := g.buildDict(c); err != nil {
			bad("cardinality", "%v", err)
		}
		if len(c.Values) > 0 && c.Cardinality > 0 {
			bad("values", "values and cardinality are exclusive")
		}
	case genTimestamp:
		start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		if c.Start != "" {
			t, err := time.Parse(time.RFC3339Nano, c.Start)
			if err != nil {
				bad("start", "want an RFC 3339 time like 2024-01-02T09:30:00Z, got %q", c.Start)
			}
			start = t
		}
		step := c.Step
		if step == 0 {
			step = time.Millisecond
		}
		if step%time.Microsecond != 0 {
			bad("step", "must be a whole number of microseconds, got %v", step)
		}
		g.tsStart, g.tsStep = start.UnixMicro(), step.Microseconds()
		if c.Jitter < 0 || c.Jitter%time.Microsecond != 0 {
			bad("jitter", "must be a whole number of microseconds, 0 or more, got %v", c.Jitter)
		}
		g.tsJitter = c.Jitter.Microseconds()
	}
	return g, errors.Join(errs...)
}

const maxGenCardinality = 1 << 24

func (g *genCol) buildDict(c GenerateColumn) error {
	vals := c.Values
	if len(vals) == 0 {
		n := c.Cardinality
		if n == 0 {
			n = 100
		}
		if n > maxGenCardinality {
			return fmt.Errorf("at most %d distinct strings, got %d", maxGenCardinality, n)
		}
		prefix := c.Prefix
		if prefix == "" {
			prefix = "sym_"
		}
		width := max(4, len(strconv.Itoa(n-1)))
		g.doff = make([]int32, 0, n+1)
		g.dict = make([]byte, 0, n*(len(prefix)+width))
		for i := range n {
			g.doff = append(g.doff, int32(len(g.dict)))
			g.dict = append(g.dict, prefix...)
			d := strconv.Itoa(i)
			for range width - len(d) {
				g.dict = append(g.dict, '0')
			}
			g.dict = append(g.dict, d...)
		}
	} else {
		total := 0
		for _, v := range vals {
			total += len(v)
		}
		if total > math.MaxInt32/1024 {
			return fmt.Errorf("the values are too long (%d bytes)", total)
		}
		g.dict = make([]byte, 0, total)
		for _, v := range vals {
			g.doff = append(g.doff, int32(len(g.dict)))
			g.dict = append(g.dict, v...)
		}
	}
	g.doff = append(g.doff, int32(len(g.dict)))
	g.card = uint64(len(g.doff) - 1)
	return nil
}

func (f *generateFactory) Schema() *arrow.Schema { return f.schema }

func (f *generateFactory) Describe() string {
	return fmt.Sprintf("%d rows, %d columns, seed %d", f.cfg.Rows, len(f.cols), f.cfg.Seed)
}

func (f *generateFactory) New(ic *engine.InstanceContext) (any, error) {
	return &generateSource{f: f, ic: ic}, nil
}

type generateSource struct {
	f       *generateFactory
	ic      *engine.InstanceContext
	scratch []uint32 // string indices, reused across batches
}

func (s *generateSource) Run(ctx context.Context, out engine.Emitter) error {
	lo, hi := s.ic.ShareRange(s.f.cfg.Rows)
	br := int64(batchRowsFor(s.f.cfg.BatchRows, s.ic.Settings))
	for row := lo; row < hi; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(br, hi-row)
		rec, err := s.f.batch(s.ic.Alloc, row, int(n), &s.scratch)
		if err != nil {
			return err
		}
		if stop, err := emitBatch(out, rec); stop {
			return err
		}
		row += n
	}
	return nil
}

// batch returns rows [row, row+n) as a batch allocated from mem; the caller
// owns it.
func (f *generateFactory) batch(mem memory.Allocator, row int64, n int, scratch *[]uint32) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, len(f.cols))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for j := range f.cols {
		a, err := f.cols[j].fill(mem, row, n, scratch)
		if err != nil {
			return nil, fmt.Errorf("generate: column %s: %w", f.schema.Field(j).Name, err)
		}
		cols[j] = a
	}
	return array.NewRecordBatch(f.schema, cols, int64(n)), nil
}

func genBuffer(mem memory.Allocator, size int) *memory.Buffer {
	b := memory.NewResizableBuffer(mem)
	b.Resize(size)
	return b
}

// fill makes the column's array for rows [row, row+n).
func (g *genCol) fill(mem memory.Allocator, row int64, n int, scratch *[]uint32) (arrow.Array, error) {
	var validity *memory.Buffer
	nulls := 0
	if g.allNull || g.nullCut > 0 {
		validity = genBuffer(mem, (n+7)/8)
		vb := validity.Bytes()
		clear(vb)
		if !g.allNull {
			for i := range n {
				if mix64(g.nullSalt+uint64(row+int64(i))*genGolden) >= g.nullCut {
					vb[i>>3] |= 1 << (i & 7)
				} else {
					nulls++
				}
			}
		} else {
			nulls = n
		}
	}
	var bufs []*memory.Buffer
	switch g.kind {
	case genInt64:
		vals := genBuffer(mem, n*8)
		v := arrow.Int64Traits.CastFromBytes(vals.Bytes())[:n]
		for i := range v {
			v[i] = g.intAt(row + int64(i))
		}
		bufs = []*memory.Buffer{validity, vals}
	case genInt32:
		vals := genBuffer(mem, n*4)
		v := arrow.Int32Traits.CastFromBytes(vals.Bytes())[:n]
		for i := range v {
			v[i] = int32(g.intAt(row + int64(i)))
		}
		bufs = []*memory.Buffer{validity, vals}
	case genFloat64:
		vals := genBuffer(mem, n*8)
		v := arrow.Float64Traits.CastFromBytes(vals.Bytes())[:n]
		for i := range v {
			h := g.hash(row + int64(i))
			switch {
			case g.card == 1:
				v[i] = g.fmin
			case g.card > 1:
				v[i] = g.fmin + float64(genBelow(h, g.card))*g.fstep
			default:
				v[i] = g.fmin + float64(h>>11)*(1.0/(1<<53))*g.fspan
			}
		}
		bufs = []*memory.Buffer{validity, vals}
	case genBool:
		vals := genBuffer(mem, (n+7)/8)
		vb := vals.Bytes()
		clear(vb)
		for i := range n {
			if g.hash(row+int64(i))>>63 != 0 {
				vb[i>>3] |= 1 << (i & 7)
			}
		}
		bufs = []*memory.Buffer{validity, vals}
	case genTimestamp:
		vals := genBuffer(mem, n*8)
		v := arrow.TimestampTraits.CastFromBytes(vals.Bytes())[:n]
		for i := range v {
			v[i] = arrow.Timestamp(g.tsStart + (row+int64(i))*g.tsStep)
			if g.tsJitter > 0 {
				v[i] += arrow.Timestamp(int64(genBelow(g.hash(row+int64(i)), uint64(2*g.tsJitter+1))) - g.tsJitter)
			}
		}
		bufs = []*memory.Buffer{validity, vals}
	case genString:
		if cap(*scratch) < n {
			*scratch = make([]uint32, n)
		}
		idx := (*scratch)[:n]
		var total int64
		for i := range idx {
			k := uint32(genBelow(g.hash(row+int64(i)), g.card))
			idx[i] = k
			total += int64(g.doff[k+1] - g.doff[k])
		}
		if total > math.MaxInt32 {
			if validity != nil {
				validity.Release()
			}
			return nil, fmt.Errorf("a batch of %d rows holds %d bytes of strings, more than 2 GiB; lower batch_rows", n, total)
		}
		offs := genBuffer(mem, (n+1)*4)
		data := genBuffer(mem, int(total))
		o := arrow.Int32Traits.CastFromBytes(offs.Bytes())[:n+1]
		d := data.Bytes()
		pos := int32(0)
		for i, k := range idx {
			o[i] = pos
			pos += int32(copy(d[pos:], g.dict[g.doff[k]:g.doff[k+1]]))
		}
		o[n] = pos
		bufs = []*memory.Buffer{validity, offs, data}
	}
	data := array.NewData(g.dt, n, bufs, nil, nulls, 0)
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
	arr := array.MakeFromData(data)
	data.Release()
	return arr, nil
}

func (g *genCol) intAt(row int64) int64 {
	switch {
	case g.seq && g.ispan == 0:
		return g.imin + row
	case g.seq:
		return g.imin + int64(uint64(row)%g.ispan)
	case g.card > 0:
		return g.imin + int64(genBelow(g.hash(row), g.card))*g.stride
	case g.ispan == 0:
		return int64(g.hash(row))
	default:
		return g.imin + int64(genBelow(g.hash(row), g.ispan))
	}
}

// genTypeNames is for error messages.
const genTypeNames = "int64, int32, float64, string, bool, timestamp"
