package pipelines

import (
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary files to Parse and Compile (with the test
// registry): they must never panic, and every error must be an ErrorList of
// positioned, sorted errors inside the file. The seed corpus is in
// testdata/fuzz/FuzzParse. Run: go test -run=^$ -fuzz=FuzzParse ./pipelines/
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodPipeline))
	f.Add([]byte("version: 1\nname: x\nsources:\n  s: {type: csv, path: p}\nsinks:\n  o: {type: stdout, inputs: s}\n"))
	reg := newTestRegistry()
	env := mapEnv(map[string]string{"A": "alpha", "N": "3", "COND": "qty > 1"})
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse(src, "f.yaml", WithRegistry(reg), WithEnv(env))
		if err == nil {
			if p == nil || p.Graph == nil || len(p.Graph.Nodes) == 0 {
				t.Fatalf("no error and no graph")
			}
			_, err = p.Compile()
			if err == nil {
				return
			}
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error is not a non-empty ErrorList: %T %v", err, err)
		}
		lines := len(newSource(src).lines)
		for i, e := range list {
			if e.Msg == "" || e.File != "f.yaml" {
				t.Errorf("bad error %+v", e)
			}
			if e.Line < 0 || e.Line > lines || e.Col < 0 || (e.Line > 0) != (e.Col > 0) {
				t.Errorf("position %d:%d outside the file (%d lines): %v", e.Line, e.Col, lines, e)
			}
			if i > 0 && e.Line > 0 && (filePos{e.Line, e.Col}).before(filePos{list[i-1].Line, list[i-1].Col}) {
				t.Errorf("errors not sorted: %v before %v", list[i-1], e)
			}
		}
	})
}
