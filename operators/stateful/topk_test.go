package stateful

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/engine"
)

// TestTopKIsSortThenLimit: top_k's rows are the first k of the reference
// sort, ties in input order, for k below, at and above the row count.
func TestTopKIsSortThenLimit(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newEnv(t, 64<<20, 500, engine.SpillSettings{})
	defer e.done(t)
	recs := genBatches(e.mem, 11, 4000, 500)
	defer releaseRecs(recs)
	schema := genSchema()
	all := concat(t, e.mem, schema, recs)
	defer all.Release()
	col := func(name string) int { return schema.FieldIndices(name)[0] }
	for _, tc := range []struct {
		by   []string
		keys []refKey
	}{
		{[]string{"f64 DESC NULLS LAST"}, []refKey{{col: col("f64"), desc: true}}},
		{[]string{"s", "i64 DESC"}, []refKey{{col: col("s")}, {col: col("i64"), desc: true}}},
		{[]string{"b NULLS FIRST"}, []refKey{{col: col("b"), nullsFirst: true}}},
		{[]string{"dict DESC", "dec"}, []refKey{{col: col("dict"), desc: true}, {col: col("dec")}}},
		{[]string{"ts_ms"}, []refKey{{col: col("ts_ms")}}},
	} {
		want := refOrder(all, tc.keys)
		for _, k := range []int{1, 7, 100, 1500, 4000, 9000} {
			t.Run(strings.Join(tc.by, ",")+"/k="+itoa(k), func(t *testing.T) {
				c, inst, err := runOp(context.Background(), e, TopKSpec(), &TopKConfig{By: tc.by, K: k}, schema, recs)
				defer c.release()
				if err != nil {
					t.Fatal(err)
				}
				w := want[:min(k, len(want))]
				if !slices.Equal(c.ids, w) {
					t.Fatalf("got %d rows %v…, want %d %v…", len(c.ids), c.ids[:min(8, len(c.ids))], len(w), w[:min(8, len(w))])
				}
				if k == 100 && inst.(*topK).compacts == 0 {
					t.Logf("no compaction at k=%d", k)
				}
			})
		}
	}
}

func itoa(n int) string { return fmtInt(n) }

func fmtInt(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// TestTopKCompacts: with a small k over many batches the heap is gathered
// into one batch now and then, and the answer does not change.
func TestTopKCompacts(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newEnv(t, 0, 100, engine.SpillSettings{})
	defer e.done(t)
	recs := genBatches(e.mem, 12, 6000, 100)
	defer releaseRecs(recs)
	schema := genSchema()
	all := concat(t, e.mem, schema, recs)
	defer all.Release()
	// A scattered key: every batch keeps a few rows in the heap.
	c, inst, err := runOp(context.Background(), e, TopKSpec(), &TopKConfig{By: []string{"(id * 7919) % 601 DESC"}, K: 150}, schema, recs)
	defer c.release()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int64, 6000)
	for i := range want {
		want[i] = int64(i)
	}
	slices.SortStableFunc(want, func(a, b int64) int { return int((b*7919)%601 - (a*7919)%601) })
	want = want[:150]
	if !slices.Equal(c.ids, want) {
		t.Fatalf("got %v…, want %v…", c.ids[:5], want[:5])
	}
	if n := inst.(*topK).compacts; n == 0 {
		t.Fatal("never compacted")
	}
	if got := e.ic.Ledger.Copies()["top_k gather"]; got == 0 {
		t.Fatal("no top_k gather on the ledger")
	}
}

func TestTopKBadConfig(t *testing.T) {
	schema := genSchema()
	for _, tc := range []struct {
		cfg  TopKConfig
		want string
	}{
		{TopKConfig{By: []string{"i64"}, K: 0}, "k: must be ≥ 1, got 0"},
		{TopKConfig{By: []string{"i64"}, K: -3}, "k: must be ≥ 1, got -3"},
		{TopKConfig{By: []string{"nope DESC"}, K: 3}, "by.0 (at offset 0)"},
	} {
		_, err := TopKSpec().Build(&engine.BuildContext{Node: "n", Inputs: []*arrow.Schema{schema}, Settings: engine.DefaultSettings()}, &tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
