package storage

import (
	"os"
	"strings"
	"testing"
)

func TestRegistry(t *testing.T) {
	open := func(string, int, os.FileMode, Options) (File, error) { return nil, nil }
	Register(Spec{Name: "test_only", Open: open})
	defer func() {
		regMu.Lock()
		delete(reg, "test_only")
		regMu.Unlock()
	}()
	if _, err := Lookup("test_only"); err != nil {
		t.Fatal(err)
	}
	_, err := Lookup("nope")
	if err == nil || !strings.Contains(err.Error(), `unknown backend "nope" (known: `) || !strings.Contains(err.Error(), "test_only") {
		t.Errorf("Lookup(nope): %v", err)
	}
	for _, bad := range []Spec{{Name: "test_only", Open: open}, {Name: "", Open: open}, {Name: "x"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", bad.Name)
				}
			}()
			Register(bad)
		}()
	}
}
