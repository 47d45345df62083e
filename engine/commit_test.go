package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// eventLog records what the executor asked of the sinks, in order.
type eventLog struct {
	mu sync.Mutex
	ev []string
}

func (l *eventLog) add(s string) {
	l.mu.Lock()
	l.ev = append(l.ev, s)
	l.mu.Unlock()
}

// plainSink cannot undo its Commit; undoSink can. Each fails where told.
type plainSink struct {
	name                   string
	log                    *eventLog
	commitErr, rollbackErr error
	forgetErr              error
}

func (s *plainSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error { return nil }
func (s *plainSink) Close(ctx context.Context) error                                 { return nil }
func (s *plainSink) Commit() error {
	s.log.add("commit " + s.name)
	return s.commitErr
}
func (s *plainSink) Abort() { s.log.add("abort " + s.name) }

type undoSink struct{ plainSink }

func (s *undoSink) Rollback() error {
	s.log.add("rollback " + s.name)
	return s.rollbackErr
}
func (s *undoSink) Forget() error {
	s.log.add("forget " + s.name)
	return s.forgetErr
}

func TestCommitSinks(t *testing.T) {
	errBoom := errors.New("boom")
	type sk struct {
		name     string
		undo     bool
		fail     string // "commit", "rollback", "forget"
		wantErrs []string
	}
	tests := []struct {
		name    string
		sinks   []sk
		want    []string
		wantErr []string // substrings of the error; none means nil
	}{
		{
			name:  "all commit, plain last",
			sinks: []sk{{name: "p"}, {name: "a", undo: true}, {name: "b", undo: true}},
			want:  []string{"commit a", "commit b", "commit p", "forget a", "forget b"},
		},
		{
			name:    "second of three fails",
			sinks:   []sk{{name: "a", undo: true}, {name: "b", undo: true, fail: "commit"}, {name: "c", undo: true}},
			want:    []string{"commit a", "commit b", "abort b", "abort c", "rollback a"},
			wantErr: []string{`engine: commit sink b: boom`},
		},
		{
			name:    "plain sink fails last: every undoable one rolled back, newest first",
			sinks:   []sk{{name: "p", fail: "commit"}, {name: "a", undo: true}, {name: "b", undo: true}},
			want:    []string{"commit a", "commit b", "commit p", "abort p", "rollback b", "rollback a"},
			wantErr: []string{`engine: commit sink p: boom`},
		},
		{
			name:    "a plain sink committed before another failed is reported",
			sinks:   []sk{{name: "p"}, {name: "q", fail: "commit"}, {name: "a", undo: true}},
			want:    []string{"commit a", "commit p", "commit q", "abort q", "rollback a"},
			wantErr: []string{`engine: commit sink q: boom`, `engine: sink p was committed and cannot be rolled back`},
		},
		{
			name:    "a failed rollback is reported, the others still roll back",
			sinks:   []sk{{name: "a", undo: true}, {name: "b", undo: true, fail: "rollback"}, {name: "c", undo: true, fail: "commit"}},
			want:    []string{"commit a", "commit b", "commit c", "abort c", "rollback b", "rollback a"},
			wantErr: []string{`engine: commit sink c: boom`, `engine: roll back sink b: boom`},
		},
		{
			name:    "a failed forget is reported",
			sinks:   []sk{{name: "a", undo: true, fail: "forget"}, {name: "b", undo: true}},
			want:    []string{"commit a", "commit b", "forget a", "forget b"},
			wantErr: []string{`engine: sink a committed but could not forget its previous output: boom`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &eventLog{}
			var sinks []Sink
			var names []string
			for _, s := range tc.sinks {
				p := plainSink{name: s.name, log: log}
				switch s.fail {
				case "commit":
					p.commitErr = errBoom
				case "rollback":
					p.rollbackErr = errBoom
				case "forget":
					p.forgetErr = errBoom
				}
				if s.undo {
					sinks = append(sinks, &undoSink{p})
				} else {
					sinks = append(sinks, &p)
				}
				names = append(names, s.name)
			}
			err := commitSinks(sinks, names)
			if !slices.Equal(log.ev, tc.want) {
				t.Errorf("events %q, want %q", log.ev, tc.want)
			}
			if len(tc.wantErr) == 0 && err != nil {
				t.Errorf("error %v", err)
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v lacks %q", err, w)
				}
			}
			if len(tc.wantErr) > 0 && !errors.Is(err, errBoom) {
				t.Errorf("error %v does not wrap the sink's", err)
			}
		})
	}
}

// scriptConfig configures the "script" test sink: an undoable sink whose
// instance FailInstance fails its Commit.
type scriptConfig struct {
	FailInstance int
	log          *eventLog
}

type scriptFactory struct{ cfg *scriptConfig }

func (f scriptFactory) Schema() *arrow.Schema { return nil }
func (f scriptFactory) New(ic *InstanceContext) (any, error) {
	s := &undoSink{plainSink{name: fmt.Sprintf("%s/%d", ic.Node, ic.Index), log: f.cfg.log}}
	if ic.Index == f.cfg.FailInstance {
		s.commitErr = errors.New("disk full")
	}
	return s, nil
}

// Through the executor: the error names the failing sink instance, the
// sink committed before it is rolled back, the one after it aborted.
func TestCommitNamesSinks(t *testing.T) {
	reg := testRegistry()
	reg.MustRegister(Spec{
		Name: "script", Kind: KindSink, Parallel: true, MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &scriptConfig{} },
		Build: func(bc *BuildContext, cfg any) (Factory, error) {
			return scriptFactory{cfg: cfg.(*scriptConfig)}, nil
		},
	})
	log := &eventLog{}
	g := &Graph{Name: "t", Nodes: []*Node{
		{ID: "src", Kind: KindSource, Type: "seq", Config: &seqConfig{Batches: 2, Rows: 10}},
		{ID: "a", Kind: KindSink, Type: "script", Inputs: []string{"src"}, Parallelism: 2, Config: &scriptConfig{FailInstance: 1, log: log}},
		{ID: "b", Kind: KindSink, Type: "script", Inputs: []string{"src"}, Config: &scriptConfig{FailInstance: -1, log: log}},
	}}
	p, err := Compile(g, CompileOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	mem := newCountingAlloc()
	_, err = p.Run(context.Background(), RunOptions{Alloc: mem})
	if err == nil || !strings.Contains(err.Error(), `engine: commit sink "a" instance 1: disk full`) {
		t.Fatalf("error %v", err)
	}
	want := []string{"commit a/0", "commit a/1", "abort a/1", "abort b/0", "rollback a/0"}
	if !slices.Equal(log.ev, want) {
		t.Fatalf("events %q, want %q", log.ev, want)
	}
	checkNoLeaks(t, mem)
}

// outcomeSource is the seq source that records the run's outcome.
type outcomeSource struct {
	Source
	log *eventLog
	err error
}

func (s *outcomeSource) RunEnded(committed bool) error {
	s.log.add(fmt.Sprintf("ended committed=%v", committed))
	return s.err
}

// TestOutcome: an instance implementing Outcome learns, after the sinks,
// whether the run's output was committed; its error after a commit fails
// the run, naming it.
func TestOutcome(t *testing.T) {
	for _, tc := range []struct {
		name      string
		commitErr int // sink instance whose Commit fails, or -1
		endErr    error
		want      []string
		wantErr   string
	}{
		{"committed", -1, nil, []string{"commit a/0", "forget a/0", "ended committed=true"}, ""},
		{"aborted", 0, errors.New("not reported"), []string{"commit a/0", "abort a/0", "ended committed=false"}, "disk full"},
		{"ack failed", -1, errors.New("ack lost"), []string{"commit a/0", "forget a/0", "ended committed=true"}, `engine: "src" after the run's output was committed: ack lost`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := testRegistry()
			log := &eventLog{}
			reg.MustRegister(Spec{
				Name: "oseq", Kind: KindSource,
				NewConfig: func() any { return &seqConfig{} },
				Build: func(bc *BuildContext, cfg any) (Factory, error) {
					return outcomeFactory{seqFactory{cfg.(*seqConfig)}, log, tc.endErr}, nil
				},
			})
			reg.MustRegister(Spec{
				Name: "script", Kind: KindSink, MinInputs: 1, MaxInputs: 1,
				NewConfig: func() any { return &scriptConfig{} },
				Build: func(bc *BuildContext, cfg any) (Factory, error) {
					return scriptFactory{cfg: cfg.(*scriptConfig)}, nil
				},
			})
			g := &Graph{Name: "t", Nodes: []*Node{
				{ID: "src", Kind: KindSource, Type: "oseq", Config: &seqConfig{Batches: 2, Rows: 10}},
				{ID: "a", Kind: KindSink, Type: "script", Inputs: []string{"src"}, Config: &scriptConfig{FailInstance: tc.commitErr, log: log}},
			}}
			p, err := Compile(g, CompileOptions{Registry: reg})
			if err != nil {
				t.Fatal(err)
			}
			mem := newCountingAlloc()
			_, err = p.Run(context.Background(), RunOptions{Alloc: mem})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if !slices.Equal(log.ev, tc.want) {
				t.Fatalf("events %q, want %q", log.ev, tc.want)
			}
			checkNoLeaks(t, mem)
		})
	}
}

type outcomeFactory struct {
	seqFactory
	log *eventLog
	err error
}

func (f outcomeFactory) New(ic *InstanceContext) (any, error) {
	op, err := f.seqFactory.New(ic)
	if err != nil {
		return nil, err
	}
	return &outcomeSource{Source: op.(Source), log: f.log, err: f.err}, nil
}
