package iotest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/io/storage"
	"github.com/zflowdev/zflow/io/storage/storagetest"
	"github.com/zflowdev/zflow/operators"
)

// TestDirectOddSizes writes every format with direct: true on the disk
// (posix and uring) for row counts that make files of sizes no block size
// divides, reads each back with direct: true, and compares the rows with
// the all-posix round trip: O_DIRECT works for any file size. The Parquet
// and Arrow readers' bounce through an aligned buffer (their reads have
// any offset and length) is in the copy ledger as "O_DIRECT alignment";
// no other copy is added by direct: true.
func TestDirectOddSizes(t *testing.T) {
	dir := storagetest.DiskDir(t)
	probe := filepath.Join(dir, "probe")
	if err := os.WriteFile(probe, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := os.OpenFile(probe, os.O_RDONLY|storage.ODirect, 0); err != nil {
		t.Skipf("the disk's file system refuses O_DIRECT: %v", err)
	} else {
		f.Close()
	}
	posix := operators.FileIO{IO: "posix"}
	for _, format := range formats {
		for _, rows := range []int64{1, 7, 333, 4099} {
			file := filepath.Join(dir, fmt.Sprintf("plain-%d.%s", rows, format))
			back := file + ".csv"
			run(t, generated(rows), format, sinkConfig(format, file, posix))
			psum := run(t, fileSource(format, file, posix), "csv", sinkConfig("csv", back, posix))
			plain := psum.Op("src")
			want, err := os.ReadFile(back)
			if err != nil {
				t.Fatal(err)
			}
			for _, kind := range []string{"posix", "uring"} {
				t.Run(fmt.Sprintf("%s/rows=%d/%s", format, rows, kind), func(t *testing.T) {
					fio := operators.FileIO{IO: kind, Direct: true}
					file := filepath.Join(dir, fmt.Sprintf("%s-%d.%s", kind, rows, format))
					wsum := run(t, generated(rows), format, sinkConfig(format, file, fio))
					st, err := os.Stat(file)
					if err != nil {
						t.Fatal(err)
					}
					back := file + ".csv"
					rsum := run(t, fileSource(format, file, fio), "csv", sinkConfig("csv", back, posix))
					got, err := os.ReadFile(back)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Errorf("a %d-byte file written and read with O_DIRECT reads back %d bytes that differ from posix's %d", st.Size(), len(got), len(want))
					}
					w, r := wsum.Op("out"), rsum.Op("src")
					if !strings.Contains(w.IO, "O_DIRECT") || !strings.Contains(r.IO, "O_DIRECT") {
						t.Errorf("summary io lines %q and %q do not say O_DIRECT", w.IO, r.IO)
					}
					bounced := r.Copies["O_DIRECT alignment"]
					switch format {
					case "parquet", "arrow":
						if bounced == 0 {
							t.Errorf("the %s reader's bounce is not in the ledger (copies %v)", format, r.Copies)
						}
					default:
						if bounced != 0 {
							t.Errorf("%s: %d bytes bounced", format, bounced)
						}
					}
					for reason, n := range r.Copies {
						if reason != "O_DIRECT alignment" && n != plain.Copies[reason] {
							t.Errorf("%s: %d bytes copied for %q with O_DIRECT, %d without", format, n, reason, plain.Copies[reason])
						}
					}
				})
			}
		}
	}
}

// TestDirectOnTmpfs asks for direct: true on tmpfs: auto drops it and
// says why in the summary; an explicit backend either opens with O_DIRECT
// (tmpfs takes it since Linux 6.6) and says so, or fails at direct with
// the file system named.
func TestDirectOnTmpfs(t *testing.T) {
	dir := storagetest.ShmDir(t)
	file := filepath.Join(dir, "in.csv")
	run(t, generated(100), "csv", sinkConfig("csv", file, operators.FileIO{IO: "auto"}))
	for _, format := range formats {
		out := filepath.Join(dir, "o."+format)
		sum := run(t, fileSource("csv", file, operators.FileIO{IO: "auto", Direct: true}), format, sinkConfig(format, out, operators.FileIO{IO: "auto", Direct: true}))
		for _, line := range []string{sum.Op("src").IO, sum.Op("out").IO} {
			if !strings.Contains(line, "direct: true dropped") || strings.Contains(line, "O_DIRECT;") {
				t.Errorf("%s: auto with direct: true on tmpfs: %q, want it dropped with the reason", format, line)
			}
		}
	}
	sum, err := tryRun(t, fileSource("csv", file, operators.FileIO{IO: "posix", Direct: true}), "csv", sinkConfig("csv", filepath.Join(dir, "p.csv"), operators.FileIO{IO: "posix"}))
	switch {
	case err == nil && !strings.Contains(sum.Op("src").IO, "O_DIRECT"):
		t.Errorf("posix with direct: true on tmpfs ran without saying O_DIRECT: %q", sum.Op("src").IO)
	case err != nil && (!strings.Contains(err.Error(), "direct") || !strings.Contains(err.Error(), "tmpfs")):
		t.Errorf("posix with direct: true on tmpfs: %v, want an error at direct naming tmpfs", err)
	}
}
