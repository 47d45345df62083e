package atomicfile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeTree(t *testing.T, d *Dir, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(d.TempName(), name), []byte(name), Perm); err != nil {
		t.Fatal(err)
	}
}

// TestDir: a tree is published whole over the previous one, which Rollback
// puts back and Forget drops; Abort leaves nothing.
func TestDir(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	d, err := CreateDir(out)
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, d, "v1")
	if err := d.Publish(); err != nil {
		t.Fatal(err)
	}
	if err := d.Forget(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, root); !slices.Equal(got, []string{"out"}) {
		t.Fatalf("after the first commit: %v", got)
	}
	// A second tree, rolled back: v1 is back.
	d, _ = CreateDir(out)
	writeTree(t, d, "v2")
	if err := d.Publish(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, out); !slices.Equal(got, []string{"v2"}) {
		t.Fatalf("published: %v", got)
	}
	if err := d.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, out); !slices.Equal(got, []string{"v1"}) {
		t.Fatalf("rolled back: %v", got)
	}
	if got := listDir(t, root); !slices.Equal(got, []string{"out"}) {
		t.Fatalf("after the rollback: %v", got)
	}
	// Aborted: nothing changes.
	d, _ = CreateDir(out)
	writeTree(t, d, "v3")
	d.Abort()
	if got := listDir(t, root); !slices.Equal(got, []string{"out"}) || !slices.Equal(listDir(t, out), []string{"v1"}) {
		t.Fatalf("after abort: %v %v", got, listDir(t, out))
	}
}

// TestRecoverDir: what a dead run left is undone: a commit it never
// finished (the previous tree comes back), its temporary trees.
func TestRecoverDir(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	mk := func(p, file string) {
		if err := os.MkdirAll(p, DirPerm); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, file), nil, Perm); err != nil {
			t.Fatal(err)
		}
	}
	dead := deadTag(t, 7)
	name := func(k Kind) string { return filepath.Join(root, FormatName("out", dead, k)) }
	// The dead run published (out holds its tree) but did not forget.
	mk(out, "new")
	mk(name(KindPrev), "old")
	if err := os.WriteFile(name(KindNew), nil, Perm); err != nil {
		t.Fatal(err)
	}
	// And another dead run's temporary tree.
	other := deadTag(t, 8)
	mk(filepath.Join(root, FormatName("out", other, KindTemp)), "partial")
	notes, err := RecoverDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, root); !slices.Equal(got, []string{"out"}) {
		t.Fatalf("left: %v (notes %v)", got, notes)
	}
	if got := listDir(t, out); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("out holds %v", got)
	}
	if !strings.Contains(strings.Join(notes, "\n"), "restored the previous") {
		t.Errorf("notes %v", notes)
	}
}
