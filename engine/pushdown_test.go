package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// atLeast is the predicate "n >= min" over seqSchema.
type atLeast struct{ min int64 }

func (p atLeast) String() string { return fmt.Sprintf("n >= %d", p.min) }
func (p atLeast) MayMatch(stats func(int) (ColumnStats, bool)) bool {
	s, ok := stats(0)
	return !ok || !s.HasMinMax || s.Max.(int64) >= p.min
}

type atLeastConfig struct {
	Min int64 `zflow:"min" doc:"smallest n kept"`
}

type atLeastFactory struct{ min int64 }

func (f atLeastFactory) Schema() *arrow.Schema        { return seqSchema }
func (f atLeastFactory) Predicate() (Predicate, bool) { return atLeast{f.min}, true }
func (f atLeastFactory) New(ic *InstanceContext) (any, error) {
	return &atLeastOp{min: f.min, ic: ic}, nil
}

type atLeastOp struct {
	min int64
	ic  *InstanceContext
}

func (o *atLeastOp) Process(ctx context.Context, port int, in arrow.RecordBatch, out Emitter) error {
	col := in.Column(0).(*array.Int64)
	b := array.NewInt64Builder(o.ic.Alloc)
	defer b.Release()
	for _, v := range col.Int64Values() {
		if v >= o.min {
			b.Append(v)
		}
	}
	arr := b.NewArray()
	defer arr.Release()
	return out.Emit(array.NewRecordBatch(seqSchema, []arrow.Array{arr}, int64(arr.Len())))
}

// blockSeq is seq whose batches are blocks it may skip by a predicate.
type blockSeqFactory struct {
	seqFactory
	pred Predicate
}

func (f *blockSeqFactory) TakePredicate(p Predicate) string {
	f.pred = p
	return "blocks whose range rules it out are skipped"
}

func (f *blockSeqFactory) New(ic *InstanceContext) (any, error) {
	return &blockSeq{seqSource: seqSource{cfg: f.cfg, mem: ic.Alloc, count: 1}, f: f, ic: ic}, nil
}

type blockSeq struct {
	seqSource
	f  *blockSeqFactory
	ic *InstanceContext
}

func (s *blockSeq) Run(ctx context.Context, out Emitter) error {
	rows := int64(s.cfg.Rows)
	for i := int64(0); i < int64(s.cfg.Batches); i++ {
		st := ColumnStats{Rows: rows, Nulls: 0, HasMinMax: true, Min: i * rows, Max: i*rows + rows - 1}
		if s.f.pred != nil && !s.f.pred.MayMatch(func(int) (ColumnStats, bool) { return st, true }) {
			s.ic.CountBlocks(0, 1)
			continue
		}
		s.ic.CountBlocks(1, 0)
		b := array.NewInt64Builder(s.mem)
		for j := int64(0); j < rows; j++ {
			b.Append(i*rows + j)
		}
		col := b.NewArray()
		b.Release()
		rec := array.NewRecordBatch(seqSchema, []arrow.Array{col}, rows)
		col.Release()
		if err := out.Emit(rec); err != nil {
			return err
		}
	}
	return nil
}

func pushdownRegistry() *Registry {
	r := testRegistry()
	r.MustRegister(Spec{
		Name: "blockseq", Kind: KindSource,
		NewConfig: func() any { return &seqConfig{Batches: 10, Rows: 100} },
		Build: func(bc *BuildContext, cfg any) (Factory, error) {
			return &blockSeqFactory{seqFactory: seqFactory{cfg.(*seqConfig)}}, nil
		},
	})
	r.MustRegister(Spec{
		Name: "at_least", Kind: KindTransform, MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &atLeastConfig{} },
		Build: func(bc *BuildContext, cfg any) (Factory, error) {
			return atLeastFactory{cfg.(*atLeastConfig).Min}, nil
		},
	})
	return r
}

func TestPushPredicate(t *testing.T) {
	for _, shared := range []bool{false, true} {
		out, other := &collectConfig{}, &collectConfig{}
		g := &Graph{Name: "push", Nodes: []*Node{
			{ID: "src", Kind: KindSource, Type: "blockseq", Config: &seqConfig{Batches: 10, Rows: 100}},
			{ID: "keep", Kind: KindTransform, Type: "at_least", Config: &atLeastConfig{Min: 750}, Inputs: []string{"src"}},
			{ID: "out", Kind: KindSink, Type: "collect", Config: out, Inputs: []string{"keep"}},
		}}
		if shared {
			g.Nodes = append(g.Nodes, &Node{ID: "all", Kind: KindSink, Type: "collect", Config: other, Inputs: []string{"src"}})
		}
		p, err := Compile(g, CompileOptions{Registry: pushdownRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		p.WriteText(&text)
		pushed := strings.Contains(text.String(), "pushdown: n >= 750 (from keep): blocks whose range rules it out are skipped")
		if pushed == shared {
			t.Errorf("shared %v: pushed %v:\n%s", shared, pushed, text.String())
		}
		mem := newCountingAlloc()
		sum, err := p.Run(context.Background(), RunOptions{Alloc: mem})
		if err != nil {
			t.Fatal(err)
		}
		checkNoLeaks(t, mem)
		src := sum.Op("src")
		if out.rows != 250 || (shared && other.rows != 1000) {
			t.Errorf("shared %v: %d rows kept, %d rows to the other sink", shared, out.rows, other.rows)
		}
		wantSkipped := int64(7)
		if shared {
			wantSkipped = 0
		}
		if src.BlocksSkipped != wantSkipped || src.BlocksRead != 10-wantSkipped {
			t.Errorf("shared %v: read %d, skipped %d blocks", shared, src.BlocksRead, src.BlocksSkipped)
		}
		var st strings.Builder
		sum.WriteText(&st)
		if !shared && !strings.Contains(st.String(), "pushdown: src skipped 7 of 10 blocks") {
			t.Errorf("summary:\n%s", st.String())
		}
	}
}
