//go:build linux

package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// fioOut is the shape of fio 3.33's --output-format=json, cut to what
// parseFio reads and some of its neighbours, after the note fio prints
// for a synchronous engine with iodepth > 1.
const fioOut = `note: both iodepth >= 1 and synchronous I/O engine are selected, queue depth will be capped at 1
{
  "fio version" : "fio-3.33",
  "jobs" : [
    {
      "jobname" : "zflow-bench",
      "error" : 0,
      "read" : {"io_bytes" : 1073741824, "bw_bytes" : 574771906, "iops" : 548.14, "runtime" : 1868},
      "write" : {"io_bytes" : 0, "bw_bytes" : 0, "iops" : 0.0, "runtime" : 0},
      "usr_cpu" : 0.5, "sys_cpu" : 13.25
    }
  ]
}
`

func TestParseFio(t *testing.T) {
	got, err := parseFio([]byte(fioOut))
	if err != nil {
		t.Fatal(err)
	}
	want := fioResult{BytesPerSec: 574771906, IOPS: 548.14, CPU: 13.75}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := parseFio([]byte(strings.TrimPrefix(fioOut, fioOut[:strings.Index(fioOut, "{")]))); err != nil {
		t.Fatalf("without the note: %v", err)
	}
}

func TestParseFioRefuses(t *testing.T) {
	for name, out := range map[string]string{
		"empty":      "",
		"notes only": "fio: pid=1, err=2/file:filesetup.c:1, func=open, error=No such file or directory\n",
		"truncated":  fioOut[:len(fioOut)/2],
		"job error":  strings.Replace(fioOut, `"error" : 0`, `"error" : 5`, 1),
		"no reads":   strings.Replace(fioOut, `"io_bytes" : 1073741824`, `"io_bytes" : 0`, 1),
		"two jobs":   strings.Replace(fioOut, `"jobs" : [`, `"jobs" : [{"jobname":"x","read":{"io_bytes":1,"runtime":1}},`, 1),
	} {
		if got, err := parseFio([]byte(out)); err == nil {
			t.Errorf("%s: no error, got %+v", name, got)
		}
	}
}

func TestFioArgs(t *testing.T) {
	j := fioJob{File: "/f", Size: 4096, Random: true, Block: 4096, Depth: 32, Engine: "io_uring", Direct: true, Runtime: 2 * time.Second}
	a := j.args()
	for _, want := range []string{"--filename=/f", "--rw=randread", "--bs=4096", "--iodepth=32", "--ioengine=io_uring", "--direct=1", "--time_based", "--runtime=2000ms", "--norandommap", "--readonly", "--output-format=json"} {
		if !slices.Contains(a, want) {
			t.Errorf("args %v lack %s", a, want)
		}
	}
	j.Once, j.Random = true, false
	a = j.args()
	if slices.Contains(a, "--time_based") || !slices.Contains(a, "--rw=read") {
		t.Errorf("a read-once sequential job: args %v", a)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1GiB": 1 << 30, "512MiB": 512 << 20, "1.5GiB": 3 << 29, "4096": 4096} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1GiB", "GiB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q): no error", bad)
		}
	}
}
