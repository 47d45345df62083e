package iotest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/storage"
	"github.com/zflowdev/zflow/io/storage/storagetest"
	"github.com/zflowdev/zflow/operators"
)

// readAheadFile writes an Arrow IPC file of many small record batches
// (generate with batch_rows 997: 41 batches) to dir.
func readAheadFile(t *testing.T, dir string) string {
	t.Helper()
	file := filepath.Join(dir, "ra.arrow")
	src := generated(40_000)
	src.Config.(*operators.GenerateConfig).BatchRows = 997
	run(t, src, "arrow", sinkConfig("arrow", file, operators.FileIO{IO: "posix"}))
	return file
}

// The arrow source reads the record batches this instance will read ahead
// through the backend's queue (io_uring's ring, posix's worker threads),
// into buffers arrow-go then uses as the batches' bodies: the file reads
// back equal on posix, uring and both with O_DIRECT, with 1 and 3
// instances, and with O_DIRECT the bodies are no longer bounced through
// the aligned reader (the ledger's "O_DIRECT alignment" stays a small
// part of the file) on either backend.
func TestArrowReadAhead(t *testing.T) {
	places := map[string]string{"tmpfs": storagetest.ShmDir(t), "disk": storagetest.DiskDir(t)}
	posix := operators.FileIO{IO: "posix"}
	for place, dir := range places {
		file := readAheadFile(t, dir)
		size := fileSize(t, file)
		ref := filepath.Join(dir, "ref.csv")
		run(t, fileSource("arrow", file, operators.FileIO{IO: "mmap"}), "csv", sinkConfig("csv", ref, posix))
		want, err := os.ReadFile(ref)
		if err != nil {
			t.Fatal(err)
		}
		fios := []operators.FileIO{{IO: "posix"}, {IO: "uring"}}
		if place == "disk" && directWorks(dir) {
			fios = append(fios, operators.FileIO{IO: "uring", Direct: true}, operators.FileIO{IO: "posix", Direct: true})
		}
		for _, fio := range fios {
			for _, par := range []int{1, 3} {
				t.Run(fmt.Sprintf("%s/%s/direct=%v/parallelism=%d", place, fio.IO, fio.Direct, par), func(t *testing.T) {
					src := fileSource("arrow", file, fio)
					src.Parallelism = par
					back := filepath.Join(dir, fmt.Sprintf("back-%s-%v-%d.csv", fio.IO, fio.Direct, par))
					sum := run(t, src, "csv", sinkConfig("csv", back, posix))
					got, err := os.ReadFile(back)
					if err != nil {
						t.Fatal(err)
					}
					if par == 1 && !bytes.Equal(got, want) {
						t.Errorf("read back differs from the mapped read (%d vs %d bytes)", len(got), len(want))
					}
					if par > 1 && !sameLines(got, want) { // instances interleave their batches
						t.Errorf("read back with %d instances: the rows differ from the mapped read", par)
					}
					if fio.Direct {
						bounced := sum.Op("src").Copies["O_DIRECT alignment"]
						t.Logf("%d of %d bytes bounced", bounced, size)
						if bounced*10 > size {
							t.Errorf("%d of the file's %d bytes bounced through the aligned reader: read-ahead served no body", bounced, size)
						}
					}
				})
			}
		}
	}
}

// A limit stops the source after a few batches while the read-ahead has
// later ones in flight: Close cancels and waits for them, the run ends
// without error, every buffer goes back (run checks the allocator at
// zero) and no goroutine is left.
func TestArrowReadAheadStopped(t *testing.T) {
	dir := storagetest.DiskDir(t)
	file := readAheadFile(t, dir)
	shm := readAheadFile(t, storagetest.ShmDir(t))
	cases := []struct {
		where, file string
		fio         operators.FileIO
	}{
		{"disk", file, operators.FileIO{IO: "uring"}}, {"disk", file, operators.FileIO{IO: "posix"}},
		{"disk", file, operators.FileIO{IO: "uring", Direct: directWorks(dir)}}, {"disk", file, operators.FileIO{IO: "posix", Direct: directWorks(dir)}},
		{"tmpfs", shm, operators.FileIO{IO: "posix"}},
	}
	for _, c := range cases {
		fio, file := c.fio, c.file
		t.Run(fmt.Sprintf("%s/%s/direct=%v", c.where, fio.IO, fio.Direct), func(t *testing.T) {
			g := &engine.Graph{Name: "stop", Nodes: []*engine.Node{fileSource("arrow", file, fio),
				{ID: "lim", Kind: engine.KindTransform, Type: "limit", Config: &operators.LimitConfig{Count: 1500}, Inputs: []string{"src"}, ConfigFrom: engine.ConfigLiteral},
				{ID: "out", Kind: engine.KindSink, Type: "csv", Config: sinkConfig("csv", filepath.Join(dir, "lim.csv"), operators.FileIO{IO: "posix"}), Inputs: []string{"lim"}, ConfigFrom: engine.ConfigDefaults}}}
			p, err := engine.Compile(g, engine.CompileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			if _, err := p.Run(context.Background(), engine.RunOptions{Alloc: mem}); err != nil {
				t.Fatal(err)
			}
			mem.AssertSize(t, 0)
			goleak.VerifyNone(t)
			got, err := os.ReadFile(filepath.Join(dir, "lim.csv"))
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(got, []byte("\n")); n != 1501 {
				t.Errorf("%d lines, want a header and 1500 rows", n)
			}
		})
	}
}

// A file whose footer is intact but whose third batch's metadata prefix
// is zeroed, and a file cut short: with read-ahead (uring, posix, both with O_DIRECT)
// the run fails with arrow-go's own error, naming the file (and the
// batch), as the mapped read does.
func TestArrowReadAheadCorrupt(t *testing.T) {
	dir := storagetest.DiskDir(t)
	file := readAheadFile(t, dir)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// The footer: its length sits before the trailing ARROW1; the third
	// block's offset is found the way arrow-go finds it, through the
	// reader, so the test corrupts what the reader reads.
	off := thirdBlockOffset(t, data)
	bad := bytes.Clone(data)
	binary.LittleEndian.PutUint32(bad[off:], 0) // end-of-stream marker where the message starts
	corrupt := filepath.Join(dir, "corrupt.arrow")
	if err := os.WriteFile(corrupt, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.arrow")
	if err := os.WriteFile(short, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	fios := []operators.FileIO{{IO: "mmap"}, {IO: "posix"}, {IO: "uring"}}
	if directWorks(dir) {
		fios = append(fios, operators.FileIO{IO: "uring", Direct: true}, operators.FileIO{IO: "posix", Direct: true})
	}
	for _, fio := range fios {
		_, err := tryRun(t, fileSource("arrow", corrupt, fio), "csv", sinkConfig("csv", filepath.Join(dir, "c.csv"), operators.FileIO{IO: "posix"}))
		if err == nil || !strings.Contains(err.Error(), "corrupt.arrow: batch 2") || !strings.Contains(err.Error(), "end-of-stream marker") {
			t.Errorf("%s direct=%v, a zeroed message prefix in batch 2: %v", fio.IO, fio.Direct, err)
		}
		_, err = tryRun(t, fileSource("arrow", short, fio), "csv", sinkConfig("csv", filepath.Join(dir, "s.csv"), operators.FileIO{IO: "posix"}))
		if err == nil || !strings.Contains(err.Error(), "short.arrow") {
			t.Errorf("%s direct=%v, a file cut in half: %v", fio.IO, fio.Direct, err)
		}
	}
}

// thirdBlockOffset is the file offset of the third record batch's
// message, from the footer's Block structs: the record batch vector is
// found by the first block, which starts right after the schema message
// (the arrow sink writes no dictionaries).
func thirdBlockOffset(t *testing.T, data []byte) int {
	t.Helper()
	flen := int(binary.LittleEndian.Uint32(data[len(data)-10:]))
	footer := data[len(data)-10-flen : len(data)-10]
	// Each Block is {offset int64, meta int32, pad, body int64}; find three
	// consecutive ones that chain (offset + meta + body = next offset).
	for p := 0; p+72 <= len(footer); p += 4 {
		o1 := int64(binary.LittleEndian.Uint64(footer[p:]))
		m1 := int64(int32(binary.LittleEndian.Uint32(footer[p+8:])))
		b1 := int64(binary.LittleEndian.Uint64(footer[p+16:]))
		o2 := int64(binary.LittleEndian.Uint64(footer[p+24:]))
		m2 := int64(int32(binary.LittleEndian.Uint32(footer[p+32:])))
		b2 := int64(binary.LittleEndian.Uint64(footer[p+40:]))
		o3 := int64(binary.LittleEndian.Uint64(footer[p+48:]))
		if o1 > 0 && m1 > 0 && b1 > 0 && o1+m1+b1 == o2 && m2 > 0 && o2+m2+b2 == o3 && o3 < int64(len(data)) {
			return int(o3)
		}
	}
	t.Fatal("no record batch blocks found in the footer")
	return 0
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// directWorks says whether dir's file system takes O_DIRECT.
func directWorks(dir string) bool {
	probe := filepath.Join(dir, ".direct-probe")
	if err := os.WriteFile(probe, make([]byte, 4096), 0o644); err != nil {
		return false
	}
	defer os.Remove(probe)
	f, err := os.OpenFile(probe, os.O_RDONLY|storage.ODirect, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// sameLines says whether a and b hold the same lines in any order.
func sameLines(a, b []byte) bool {
	count := map[string]int{}
	for _, l := range strings.Split(string(a), "\n") {
		count[l]++
	}
	for _, l := range strings.Split(string(b), "\n") {
		count[l]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}
