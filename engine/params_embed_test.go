package engine

import (
	"slices"
	"testing"
)

type sharedParams struct {
	Mode  string `zflow:"mode" enum:"a,b" doc:"shared"`
	Depth int    `zflow:"depth"`
}

type withShared struct {
	Path string `zflow:"path"`
	sharedParams
	Shared2 sharedParams // a named struct field stays one parameter
	Tagged  sharedParams `zflow:"tagged"`
}

type WithExported struct {
	Path string `zflow:"path"`
	ExportedShared
}

type ExportedShared struct {
	Mode  string `zflow:"mode"`
	Depth int    `zflow:"depth"`
}

// TestParamsEmbedded: an exported embedded struct without a tag lends its
// parameters to the outer struct, at index paths that reach them; an
// unexported one (or a named or tagged field) does not.
func TestParamsEmbedded(t *testing.T) {
	ps, err := Params(&WithExported{ExportedShared: ExportedShared{Mode: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"path", "mode", "depth"}) {
		t.Fatalf("params %v, want path, mode, depth", names)
	}
	if ps[1].Default != "x" || !slices.Equal(ps[2].Index, []int{1, 1}) {
		t.Errorf("mode default %q, depth index %v; want x and [1 1]", ps[1].Default, ps[2].Index)
	}
	ps, err = Params(&withShared{})
	if err != nil {
		t.Fatal(err)
	}
	names = names[:0]
	for _, p := range ps {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"path", "tagged"}) {
		t.Errorf("params %v, want path and tagged", names)
	}
	type dup struct {
		Mode string `zflow:"mode"`
		ExportedShared
	}
	if _, err := Params(&dup{}); err == nil {
		t.Error("a parameter declared twice through an embedded struct: no error")
	}
}
