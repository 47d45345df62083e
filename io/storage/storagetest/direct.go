package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/zflowdev/zflow/io/storage"
)

// Direct checks O_DIRECT: on the disk, aligned reads of a file whose size
// is not a multiple of the block size (the last one short, io.EOF),
// unaligned offset, length and buffer refused with ErrUnaligned and
// counted; on tmpfs, the open refused with the file system named.
func Direct(t *testing.T, open Opener) {
	t.Run("disk", func(t *testing.T) {
		dir := DiskDir(t)
		const size = 5*4096 + 777
		path, want := WriteFile(t, dir, "direct.bin", size)
		f, err := open(path, os.O_RDONLY, 0, storage.Options{Direct: true})
		if err != nil {
			t.Skipf("O_DIRECT unavailable on this disk: %v", err)
		}
		defer f.Close()
		align := f.Align()
		if align < 512 || align&(align-1) != 0 {
			t.Fatalf("Align() = %d, want a power of two ≥ 512", align)
		}
		t.Logf("O_DIRECT alignment %d", align)
		chunk := 4096
		if chunk%align != 0 {
			chunk = align
		}
		if got := ReadAll(t, f, chunk); !bytes.Equal(got, want) {
			t.Errorf("O_DIRECT read %d bytes, differ from the file's %d", len(got), len(want))
		}
		good := Aligned(2*align, align)
		reqs := []storage.Request{
			{Buf: good, Off: int64(align) / 2},              // offset
			{Buf: good[:align/2], Off: 0},                   // length
			{Buf: Aligned(align+1, align)[1:], Off: 0},      // address
			{Buf: Aligned(align, align), Off: int64(align)}, // fine
		}
		if err := f.ReadBatch(context.Background(), reqs); err != nil {
			t.Fatal(err)
		}
		for i, r := range reqs[:3] {
			if !errors.Is(r.Err, storage.ErrUnaligned) || r.N != 0 {
				t.Errorf("unaligned request %d: n=%d err=%v, want ErrUnaligned", i, r.N, r.Err)
			}
		}
		if r := reqs[3]; r.Err != nil || !bytes.Equal(r.Buf, want[align:2*align]) {
			t.Errorf("aligned request next to refused ones: n=%d err=%v", r.N, r.Err)
		}
		if st := f.Stats(); st.Refused != 3 {
			t.Errorf("Stats.Refused = %d, want 3", st.Refused)
		}
		tail := Aligned(2*align, align)
		last := int64(size) / int64(align) * int64(align)
		r := []storage.Request{{Buf: tail, Off: last}}
		if err := f.ReadBatch(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if r[0].N != size-int(last) || !errors.Is(r[0].Err, io.EOF) || !bytes.Equal(tail[:r[0].N], want[last:]) {
			t.Errorf("O_DIRECT read of the last partial block: n=%d err=%v, want %d bytes and io.EOF", r[0].N, r[0].Err, size-int(last))
		}
	})
	t.Run("disk-write", func(t *testing.T) {
		dir := DiskDir(t)
		path := dir + "/direct-out.bin"
		f, err := open(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644, storage.Options{Direct: true})
		if err != nil {
			t.Skipf("O_DIRECT unavailable on this disk: %v", err)
		}
		defer f.Close()
		align := f.Align()
		_, want := WriteFile(t, dir, "direct-src.bin", 8*align)
		var reqs []storage.Request
		for off := 0; off < len(want); off += 2 * align {
			b := Aligned(2*align, align)
			copy(b, want[off:])
			reqs = append(reqs, storage.Request{Buf: b, Off: int64(off)})
		}
		reqs = append(reqs, storage.Request{Buf: Aligned(align, align)[:align-1], Off: 0}) // refused
		if err := f.WriteBatch(context.Background(), reqs); err != nil {
			t.Fatal(err)
		}
		for i, r := range reqs[:len(reqs)-1] {
			if r.Err != nil || r.N != len(r.Buf) {
				t.Errorf("O_DIRECT write %d: n=%d err=%v", i, r.N, r.Err)
			}
		}
		if last := reqs[len(reqs)-1]; !errors.Is(last.Err, storage.ErrUnaligned) {
			t.Errorf("unaligned O_DIRECT write: %v, want ErrUnaligned", last.Err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("O_DIRECT writes: file differs (%d bytes, %v)", len(got), err)
		}
	})
	t.Run("tmpfs-refuses", func(t *testing.T) {
		dir := ShmDir(t)
		path, _ := WriteFile(t, dir, "direct.bin", 4096)
		f, err := open(path, os.O_RDONLY, 0, storage.Options{Direct: true})
		if err == nil {
			// Linux 6.6+ tmpfs accepts O_DIRECT; check the explanation an
			// older kernel's EINVAL gets on this real tmpfs path.
			f.Close()
			err = storage.OpenError("backend", path, true, syscall.EINVAL)
		}
		if !strings.Contains(err.Error(), "tmpfs refuses O_DIRECT") {
			t.Errorf("open with O_DIRECT on tmpfs: %v, want it to name tmpfs", err)
		}
	})
}
