package iotest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/storage/storagetest"
	"github.com/zflowdev/zflow/operators"
)

// TestRawEveryBackend copies a file whose size is no multiple of any
// block size through the raw source (as records, the partial one padded,
// and as whole blocks) and the raw sink on each backend, on tmpfs and on
// the disk, with O_DIRECT on the disk: the copy holds the expected bytes,
// and the summary names the backend (and O_DIRECT).
func TestRawEveryBackend(t *testing.T) {
	const size = 3<<20 + 12345
	places := map[string]string{"tmpfs": storagetest.ShmDir(t), "disk": storagetest.DiskDir(t)}
	type variant struct {
		io     string
		direct bool
	}
	for place, dir := range places {
		path, data := storagetest.WriteFile(t, dir, "in.bin", size)
		vs := []variant{{"posix", false}, {"uring", false}, {"mmap", false}, {"auto", false}}
		if place == "disk" {
			vs = append(vs, variant{"posix", true}, variant{"uring", true}, variant{"auto", true})
		}
		for _, v := range vs {
			for _, mode := range []string{"records", "blocks"} {
				name := fmt.Sprintf("%s/%s/direct=%v/%s", place, v.io, v.direct, mode)
				t.Run(name, func(t *testing.T) {
					fio := operators.FileIO{IO: v.io, Direct: v.direct}
					if v.io == "uring" {
						fio.QueueDepth = 4
					}
					src := operators.RawSourceSpec().NewConfig().(*operators.RawSourceConfig)
					src.Files, src.FileIO = []string{path}, fio
					want := data
					if mode == "records" {
						src.RecordSize, src.Partial = 1000, "pad"
						want = append(bytes.Clone(data), make([]byte, 1000-size%1000)...)
					} else {
						src.BlockSize = 1 << 20
					}
					sink := operators.RawSinkSpec().NewConfig().(*operators.RawSinkConfig)
					sink.Path, sink.FileIO = filepath.Join(dir, strings.ReplaceAll(name, "/", "_")), fio
					if v.io == "mmap" {
						sink.FileIO.IO = "auto"
					}
					sum := run(t, &engine.Node{ID: "src", Kind: engine.KindSource, Type: "raw", Config: src, ConfigFrom: engine.ConfigDefaults}, "raw", sink)
					got, err := os.ReadFile(sink.Path)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Errorf("the copy holds %d bytes that differ from the %d expected", len(got), len(want))
					}
					r, w := sum.Op("src").IO, sum.Op("out").IO
					if v.io != "auto" && !strings.HasPrefix(r, v.io+" (") {
						t.Errorf("the source's summary says %q", r)
					}
					if v.io != "auto" && v.io != "mmap" && !strings.HasPrefix(w, v.io+" (") {
						t.Errorf("the sink's summary says %q", w)
					}
					if v.direct && (!strings.Contains(r, "O_DIRECT") || !strings.Contains(w, "O_DIRECT")) {
						t.Errorf("direct: true on the disk: summary says %q and %q", r, w)
					}
				})
			}
		}
	}
}
