//go:build linux

package dax

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/cxl"
	"github.com/zflowdev/zflow/internal/units"
)

// The guest's device (see doc.go and interop/guest/init.sh).
const (
	devName  = "dax0.0"
	devPath  = "/dev/" + devName
	daxNode  = 2 // the NVDIMM sits on the memory-only node
	rows     = 200000
	sysfsDev = "/sys/bus/dax/devices/" + devName
)

// device is what sysfs says of /dev/dax0.0.
type device struct {
	size, align int64
	node        int
}

// guestDevice skips the test outside the DAX guest, else reads the
// device's size, align and node from sysfs.
func guestDevice(t *testing.T) device {
	t.Helper()
	if g := os.Getenv("ZFLOW_GUEST"); g != "dax" {
		t.Skipf("ZFLOW_GUEST=%q, not \"dax\": this check needs the QEMU guest with an emulated NVDIMM in devdax mode (/dev/dax0.0); run `make interop`", g)
	}
	read := func(attr string) int64 {
		b, err := os.ReadFile(filepath.Join(sysfsDev, attr))
		if err != nil {
			t.Fatalf("sysfs: %v", err)
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 0, 64)
		if err != nil {
			t.Fatalf("sysfs %s/%s: %v", sysfsDev, attr, err)
		}
		return v
	}
	d := device{size: read("size"), align: read("align"), node: int(read("target_node"))}
	if fi, err := os.Stat(devPath); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("%s: %v (mode %v): the guest's /init should have made it", devPath, err, fi)
	}
	return d
}

func zflowBin() string {
	if b := os.Getenv("ZFLOW_BIN"); b != "" {
		return b
	}
	return "zflow"
}

// zflow runs the zflow binary and returns its stdout; it fails the test
// unless the exit status is want.
func zflow(t *testing.T, want int, args ...string) string {
	t.Helper()
	cmd := exec.Command(zflowBin(), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("zflow %s: %v", strings.Join(args, " "), err)
	}
	if code != want {
		t.Fatalf("zflow %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String()
}

// TestDAXTopology is check 1: zflow topology, as text and as JSON, lists
// the device with what sysfs says of it.
func TestDAXTopology(t *testing.T) {
	d := guestDevice(t)
	var doc struct {
		DAX []struct {
			Name   string `json:"name"`
			Path   string `json:"path"`
			Size   int64  `json:"size"`
			Align  int64  `json:"align"`
			Node   int    `json:"node"`
			Driver string `json:"driver"`
		} `json:"dax"`
	}
	out := zflow(t, 0, "topology", "--json")
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("zflow topology --json: %v\n%s", err, out)
	}
	if len(doc.DAX) != 1 {
		t.Fatalf("zflow topology --json: %d DAX devices, want 1\n%s", len(doc.DAX), out)
	}
	got := doc.DAX[0]
	t.Logf("zflow topology --json: %s %s size=%d align=%d node=%d driver=%s; sysfs: size=%d align=%d target_node=%d",
		got.Name, got.Path, got.Size, got.Align, got.Node, got.Driver, d.size, d.align, d.node)
	if got.Name != devName || got.Path != devPath || got.Size != d.size || got.Align != d.align || got.Node != d.node || got.Driver != "device_dax" {
		t.Errorf("zflow topology --json lists %+v; sysfs says %+v", got, d)
	}
	if d.node != daxNode {
		t.Errorf("the NVDIMM is on node %d, the guest put it on node %d", d.node, daxNode)
	}
	text := zflow(t, 0, "topology")
	line := ""
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, devPath) {
			line = strings.TrimSpace(l)
		}
	}
	t.Logf("zflow topology: %q", line)
	if !strings.HasPrefix(line, devName) {
		t.Errorf("zflow topology has no line for %s:\n%s", devPath, text)
	}
	// zflow doctor says the device is usable as it is.
	advice := zflow(t, 0, "doctor")
	want := fmt.Sprintf("%s: %s on node %d, align %s, mapped through %s", devName, units.Bytes(d.size), d.node, units.Bytes(d.align), devPath)
	for _, l := range strings.Split(advice, "\n") {
		if strings.Contains(l, devName) {
			t.Logf("zflow doctor: %q", strings.TrimSpace(l))
		}
	}
	if !strings.Contains(advice, want) {
		t.Errorf("zflow doctor lacks %q:\n%s", want, advice)
	}
}

// TestDAXSizeTooLarge: an arena that asks for a segment larger than the
// device is refused, saying how large the device is (the run goes on with
// the Go heap, as for any arena that cannot be made, and logs why), and the
// device is left as it was.
func TestDAXSizeTooLarge(t *testing.T) {
	d := guestDevice(t)
	wipeDevice(t)
	dir := t.TempDir()
	p := start(t, dir, "toolarge", fmt.Sprintf(`version: 1
name: toolarge
settings: {memory: {arena: cxl, path: %s, size: %d}}
sources:
  g: {type: generate, rows: 10, columns: %s}
sinks:
  out: {type: discard, inputs: [g]}
`, devPath, 2*d.size, columns))
	err := p.cmd.Wait()
	msg := strings.TrimSpace(p.errb.String())
	t.Logf("arena cxl of %d bytes on the %d-byte device: %v: %s", 2*d.size, d.size, err, msg)
	if has := "the device has " + units.Bytes(d.size/d.align*d.align); !strings.Contains(msg, has) {
		t.Errorf("a segment twice the device's size: %v, the log lacks %q\n%s", err, has, msg)
	}
	if _, err := cxl.Open(devPath, cxl.Options{}); !errors.Is(err, cxl.ErrNotSegment) {
		t.Errorf("after the failed make, opening the device: %v, want %v", err, cxl.ErrNotSegment)
	}
}
