package atomicfile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// createAs is Create for a file owned by tag (to play a dead or foreign
// run): the real Create, its temporary file renamed.
func createAs(t *testing.T, path string, tag Tag, data string) *File {
	t.Helper()
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.tag = tag
	tmp := f.name(KindTemp)
	if err := os.Rename(f.tmp, tmp); err != nil {
		t.Fatal(err)
	}
	f.tmp = tmp
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	return f
}

func selfOrSkip(t *testing.T) Owner {
	t.Helper()
	me, err := Self()
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	return me
}

// deadTag is a tag of a dead process: this pid with another start time.
func deadTag(t *testing.T, r uint32) Tag {
	o := selfOrSkip(t)
	o.Start++
	return Tag{Owner: o, Rand: r}
}

func readOr(path, absent string) string {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return absent
	}
	return string(b)
}

func TestPublishForget(t *testing.T) {
	for _, old := range []string{"", "old"} {
		dir := t.TempDir()
		path := filepath.Join(dir, "out")
		if old != "" {
			os.WriteFile(path, []byte(old), 0o600)
		}
		f, err := Create(path)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("new"))
		if err := f.Publish(); err != nil {
			t.Fatal(err)
		}
		if got := readOr(path, "<none>"); got != "new" {
			t.Fatalf("published %q", got)
		}
		want := []string{FormatName("out", f.tag, KindNew), "out"}
		if old != "" {
			want = append(want, FormatName("out", f.tag, KindPrev))
			if got := readOr(f.name(KindPrev), ""); got != old {
				t.Fatalf("kept %q, want %q", got, old)
			}
		}
		slices.Sort(want)
		if got := listDir(t, dir); !slices.Equal(got, want) {
			t.Fatalf("after publish: %v, want %v", got, want)
		}
		if err := f.Forget(); err != nil {
			t.Fatal(err)
		}
		if err := f.Forget(); err != nil {
			t.Fatalf("second forget: %v", err)
		}
		if got := listDir(t, dir); !slices.Equal(got, []string{"out"}) || readOr(path, "") != "new" {
			t.Fatalf("after forget: %v %q", got, readOr(path, ""))
		}
		if err := f.Rollback(); err == nil {
			t.Fatal("rollback after forget succeeded")
		}
	}
}

func TestPublishRollback(t *testing.T) {
	for _, old := range []string{"", "old"} {
		dir := t.TempDir()
		path := filepath.Join(dir, "out")
		if old != "" {
			os.WriteFile(path, []byte(old), 0o600)
		}
		f, err := Create(path)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("new"))
		if err := f.Publish(); err != nil {
			t.Fatal(err)
		}
		if err := f.Rollback(); err != nil {
			t.Fatal(err)
		}
		if err := f.Rollback(); err != nil {
			t.Fatalf("second rollback: %v", err)
		}
		f.Abort() // no-op
		if got := readOr(path, ""); got != old {
			t.Fatalf("after rollback %q, want %q", got, old)
		}
		var want []string
		if old != "" {
			want = []string{"out"}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
				t.Fatalf("restored mode %v", st.Mode())
			}
		}
		if got := listDir(t, dir); !slices.Equal(got, want) {
			t.Fatalf("after rollback: %v, want %v", got, want)
		}
		if err := f.Forget(); err == nil {
			t.Fatal("forget after rollback succeeded")
		}
	}
}

// Someone replaced the published file: Rollback must not destroy theirs.
func TestRollbackReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	f, _ := Create(path)
	f.Write([]byte("new"))
	if err := f.Publish(); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	os.WriteFile(path, []byte("theirs"), 0o644)
	if err := f.Rollback(); err == nil || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("rollback: %v", err)
	}
	if got := readOr(path, ""); got != "theirs" {
		t.Fatalf("final %q", got)
	}
}

// A non-empty directory under the final name: Publish fails and leaves
// nothing of its own.
func TestPublishOverDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	os.MkdirAll(filepath.Join(path, "x"), 0o755)
	f, _ := Create(path)
	f.Write([]byte("new"))
	if err := f.Publish(); err == nil {
		t.Fatal("publish over a directory succeeded")
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"out"}) {
		t.Fatalf("left %v", got)
	}
	if err := f.Rollback(); err == nil {
		t.Fatal("rollback of a failed publish succeeded")
	}
}

func TestRecover(t *testing.T) {
	me := selfOrSkip(t)
	live := Tag{Owner: me, Rand: 1}
	foreign := Tag{Owner: Owner{Space: me.Space + 1, Boot: me.Boot, PID: 1, Start: 1}, Rand: 2}
	tests := []struct {
		name      string
		old       string // the final file before; "" none
		setup     func(t *testing.T, path string)
		want      string                     // the final file after Recover; "" none
		wantFiles func(base string) []string // what else stays
	}{
		{
			name: "dead temporary file",
			old:  "old",
			setup: func(t *testing.T, path string) {
				createAs(t, path, deadTag(t, 3), "partial")
			},
			want: "old",
		},
		{
			name: "live, foreign, other final name, user's and old-version files stay",
			old:  "old",
			setup: func(t *testing.T, path string) {
				createAs(t, path, live, "live")
				createAs(t, path, foreign, "foreign")
				createAs(t, path+"2", deadTag(t, 4), "other sink")
				os.WriteFile(filepath.Join(filepath.Dir(path), ".out.tmp-123"), nil, 0o644)
				os.WriteFile(filepath.Join(filepath.Dir(path), "notes.txt"), nil, 0o644)
			},
			want: "old",
			wantFiles: func(base string) []string {
				return []string{FormatName(base, live, KindTemp), FormatName(base, foreign, KindTemp),
					FormatName(base+"2", deadTag(t, 4), KindTemp), ".out.tmp-123", "notes.txt"}
			},
		},
		{
			name: "dead pending commit over a file: restored",
			old:  "old",
			setup: func(t *testing.T, path string) {
				publish(t, createAs(t, path, deadTag(t, 5), "new"))
			},
			want: "old",
		},
		{
			name: "dead pending commit where no file was: removed",
			setup: func(t *testing.T, path string) {
				publish(t, createAs(t, path, deadTag(t, 6), "new"))
			},
		},
		{
			name: "dead after forgetting the new mark: the commit stands",
			old:  "old",
			setup: func(t *testing.T, path string) {
				f := createAs(t, path, deadTag(t, 7), "new")
				publish(t, f)
				os.Remove(f.name(KindNew))
			},
			want: "new",
		},
		{
			name: "dead pending commit, final replaced since: theirs stays",
			old:  "old",
			setup: func(t *testing.T, path string) {
				publish(t, createAs(t, path, deadTag(t, 8), "new"))
				os.Remove(path)
				os.WriteFile(path, []byte("theirs"), 0o644)
			},
			want: "theirs",
		},
		{
			name: "two dead pending commits, one over the other: the first file is back",
			old:  "old",
			setup: func(t *testing.T, path string) {
				// Recover looks at a (rand 9) first: it is not visible
				// until b is undone.
				publish(t, createAs(t, path, deadTag(t, 9), "a"))
				publish(t, createAs(t, path, deadTag(t, 0xffffffff), "b"))
			},
			want: "old",
		},
		{
			name: "live pending commit stays",
			old:  "old",
			setup: func(t *testing.T, path string) {
				publish(t, createAs(t, path, live, "new"))
			},
			want: "new",
			wantFiles: func(base string) []string {
				return []string{FormatName(base, live, KindNew), FormatName(base, live, KindPrev)}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out")
			if tc.old != "" {
				os.WriteFile(path, []byte(tc.old), 0o644)
			}
			tc.setup(t, path)
			notes, err := Recover(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := readOr(path, ""); got != tc.want {
				t.Errorf("final %q, want %q (notes %q)", got, tc.want, notes)
			}
			var want []string
			if tc.want != "" {
				want = append(want, "out")
			}
			if tc.wantFiles != nil {
				want = append(want, tc.wantFiles("out")...)
			}
			slices.Sort(want)
			if got := listDir(t, dir); !slices.Equal(got, want) {
				t.Errorf("files %q, want %q (notes %q)", got, want, notes)
			}
		})
	}
}

func publish(t *testing.T, f *File) {
	t.Helper()
	if err := f.Publish(); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverMissingDir(t *testing.T) {
	if notes, err := Recover(filepath.Join(t.TempDir(), "no", "out")); err != nil || notes != nil {
		t.Fatalf("%q %v", notes, err)
	}
}
