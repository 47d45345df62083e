package ociimage

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteVerify(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "prog")
	if err := os.WriteFile(bin, bytes.Repeat([]byte("zflow"), 1000), 0o755); err != nil {
		t.Fatal(err)
	}
	img := Image{Name: "zflow.local/zflow:test", Files: []File{{Path: "/usr/bin/zflow", Source: bin}},
		Dirs: []string{"/tmp"}, Entrypoint: []string{"/usr/bin/zflow"}}
	var a, b bytes.Buffer
	d1, err := Write(&a, img)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := Write(&b, img)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("the same inputs made different images: %s %s", d1, d2)
	}
	c, err := Verify(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != img.Name || c.Files["/usr/bin/zflow"] != 5000 || len(c.Files) != 1 {
		t.Fatalf("contents: %q %v", c.Name, c.Files)
	}
	if c.Config.Config.Entrypoint[0] != "/usr/bin/zflow" || c.Config.OS != "linux" || c.Config.Architecture != "amd64" {
		t.Fatalf("config: %+v", c.Config)
	}

	// One flipped byte anywhere in a blob is caught.
	bad := bytes.Clone(a.Bytes())
	i := bytes.Index(bad, []byte(`"Entrypoint"`))
	bad[i+1] = 'e'
	if _, err := Verify(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("a changed config blob: %v", err)
	}
	if _, err := Verify(bytes.NewReader(a.Bytes()[:a.Len()/2])); err == nil {
		t.Fatal("a truncated archive verified")
	}
}

func TestWriteRefuses(t *testing.T) {
	for _, img := range []Image{
		{Name: "x"},
		{Name: "x", Files: []File{{Path: "rel", Source: "/dev/null"}}},
		{Name: "x", Files: []File{{Path: "/a/../b", Source: "/dev/null"}}},
		{Name: "x", Files: []File{{Path: "/a", Source: "/nonexistent/file"}}},
	} {
		if _, err := Write(&bytes.Buffer{}, img); err == nil {
			t.Errorf("%+v: no error", img)
		}
	}
}
