package operators

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/zflowdev/zflow/io/storage"
)

// TestSeqReader reads files of sizes around the chunk and batch sizes
// through posix with faults injected into the real syscalls: EINTR and
// short reads are absorbed by the backend and give the same bytes; EIO on
// a request fails the read with it.
func TestSeqReader(t *testing.T) {
	dir := t.TempDir()
	eintr := func(c storage.Call, n int, err error) (int, error) {
		if c.Attempt == 0 && c.Seq%3 == 1 {
			return 0, syscall.EINTR
		}
		return n, err
	}
	short := func(c storage.Call, n int, err error) (int, error) {
		if c.Attempt == 0 && n > 100 {
			return n / 2, nil
		}
		return n, err
	}
	eio := func(c storage.Call, n int, err error) (int, error) {
		if c.Covers(2) {
			return 0, syscall.EIO
		}
		return n, err
	}
	for _, size := range []int{0, 1, readAheadChunk - 1, readAheadChunk, readAheadChunk + 1, 5*readAheadChunk + 17} {
		want := make([]byte, size)
		for i := range want {
			want[i] = byte(i*7 + i>>11)
		}
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name  string
			depth int
			fault storage.Fault
			err   error
		}{
			{"depth 1", 1, nil, nil},
			{"depth 2", 2, nil, nil},
			{"depth 32", 32, nil, nil},
			{"eintr", 4, eintr, nil},
			{"short", 3, short, nil},
			{"eio", 1, eio, syscall.EIO},
		} {
			b, err := storage.New("posix", storage.Options{QueueDepth: tc.depth, Fault: tc.fault}, "test")
			if err != nil {
				t.Fatal(err)
			}
			f, err := b.Open(path, os.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(newSeqReader(context.Background(), f, tc.depth))
			f.Close()
			wantErr := tc.err
			if wantErr != nil && size <= 2*readAheadChunk {
				wantErr = nil // the file ends before request 2
			}
			switch {
			case wantErr != nil:
				if !errors.Is(err, wantErr) {
					t.Errorf("size %d, %s: error %v, want %v", size, tc.name, err, wantErr)
				}
			case err != nil:
				t.Errorf("size %d, %s: %v", size, tc.name, err)
			case !bytes.Equal(got, want):
				t.Errorf("size %d, %s: read %d bytes that differ from the %d written", size, tc.name, len(got), len(want))
			}
		}
	}
}

// TestSeqWriter writes through posix in pieces of awkward sizes, with and
// without faults: the file holds exactly what was written; EIO fails the
// write or the finish with it.
func TestSeqWriter(t *testing.T) {
	dir := t.TempDir()
	short := func(c storage.Call, n int, err error) (int, error) {
		if c.Attempt == 0 && n > 100 {
			return n / 3, nil
		}
		return n, err
	}
	eio := func(c storage.Call, n int, err error) (int, error) {
		if c.Covers(1) {
			return 0, syscall.EIO
		}
		return n, err
	}
	want := make([]byte, 3*readAheadChunk+12345)
	for i := range want {
		want[i] = byte(i * 13)
	}
	for _, tc := range []struct {
		name  string
		depth int
		fault storage.Fault
		err   error
	}{
		{"depth 1", 1, nil, nil},
		{"depth 4", 4, nil, nil},
		{"short", 2, short, nil},
		{"eio", 1, eio, syscall.EIO},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := storage.New("posix", storage.Options{QueueDepth: tc.depth, Fault: tc.fault, Write: true}, "test")
		if err != nil {
			t.Fatal(err)
		}
		f, err := b.Open(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		w := newSeqWriter(context.Background(), f, tc.depth, readAheadChunk)
		var werr error
		for p := want; len(p) > 0 && werr == nil; {
			n := min(len(p), 70001)
			_, werr = w.Write(p[:n])
			p = p[n:]
		}
		ferr := w.finish()
		w.close()
		if werr == nil {
			werr = ferr
		}
		if tc.err != nil {
			if !errors.Is(werr, tc.err) {
				t.Errorf("%s: error %v, want %v", tc.name, werr, tc.err)
			}
			continue
		}
		if werr != nil {
			t.Fatalf("%s: %v", tc.name, werr)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the file holds %d bytes that differ from the %d written", tc.name, len(got), len(want))
		}
	}
}
