//go:build linux

package rdma

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func guest(t *testing.T) {
	t.Helper()
	if g := os.Getenv("ZFLOW_GUEST"); g != "rdma" {
		t.Skipf("ZFLOW_GUEST=%q, not \"rdma\": this check needs Soft-RoCE (rdma_rxe) and rdma-core, which the QEMU guest of `make interop` has", g)
	}
}

func zflowBin() string {
	if b := os.Getenv("ZFLOW_BIN"); b != "" {
		return b
	}
	return "zflow"
}

const dev = "rxe0"

// ensureDevice makes rxe0 on eth0 once.
func ensureDevice(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/class/infiniband/" + dev); err == nil {
		return
	}
	out, err := exec.Command("rdma", "link", "add", dev, "type", "rxe", "netdev", "eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("rdma link add %s type rxe netdev eth0: %v\n%s", dev, err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile("/sys/class/infiniband/" + dev + "/ports/1/state"); err == nil && strings.Contains(string(b), "ACTIVE") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile("/sys/class/infiniband/" + dev + "/ports/1/state")
	t.Fatalf("%s port 1 is not active after 10 s: %q", dev, b)
}

// gidIndex is the index of rxe0's GID that holds an IPv4 address (RoCE v2
// over IPv4), as zflow picks it.
func gidIndex(t *testing.T) int {
	t.Helper()
	for i := 0; i < 16; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/sys/class/infiniband/%s/ports/1/gids/%d", dev, i))
		if err != nil {
			break
		}
		if strings.HasPrefix(strings.TrimSpace(string(b)), "0000:0000:0000:0000:0000:ffff:") {
			return i
		}
	}
	t.Fatalf("%s has no IPv4 GID", dev)
	return 0
}

func TestSoftRoCEDevice(t *testing.T) {
	guest(t)
	ensureDevice(t)
	out, err := exec.Command("ibv_devices").CombinedOutput()
	t.Logf("ibv_devices:\n%s", out)
	if err != nil || !strings.Contains(string(out), dev) {
		t.Fatalf("ibv_devices does not list %s: %v", dev, err)
	}
	link, _ := exec.Command("rdma", "link", "show").CombinedOutput()
	t.Logf("rdma link show:\n%s", link)
	for i := 0; i < 4; i++ {
		if b, err := os.ReadFile(fmt.Sprintf("/sys/class/infiniband/%s/ports/1/gids/%d", dev, i)); err == nil {
			t.Logf("gid %d: %s", i, strings.TrimSpace(string(b)))
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "p.yaml")
	os.WriteFile(p, []byte(receiverYAML("127.0.0.1:7300", filepath.Join(dir, "x.csv"))), 0o644)
	plan, err := exec.Command(zflowBin(), "plan", p).CombinedOutput()
	t.Logf("zflow plan:\n%s", plan)
	if err != nil || !strings.Contains(string(plan), "rdma/rxe") || !strings.Contains(string(plan), "verbs device rxe0") {
		t.Fatalf("zflow plan does not pick rdma/rxe on %s: %v", dev, err)
	}
}

var bwLine = regexp.MustCompile(`(?m)^\s*(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$`)

func TestIBWriteBW(t *testing.T) {
	guest(t)
	ensureDevice(t)
	x := fmt.Sprint(gidIndex(t))
	args := []string{"-d", dev, "-x", x, "-s", "65536", "-n", "200", "-F"}
	srv := exec.Command("ib_write_bw", args...)
	var sout bytes.Buffer
	srv.Stdout, srv.Stderr = &sout, &sout
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	time.Sleep(time.Second)
	var out []byte
	var err error
	for i := 0; i < 10; i++ {
		out, err = exec.Command("ib_write_bw", append(args, "127.0.0.1")...).CombinedOutput()
		if err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	srv.Wait()
	t.Logf("ib_write_bw client:\n%s\nserver:\n%s", out, sout.String())
	if err != nil {
		t.Fatalf("ib_write_bw: %v", err)
	}
	m := bwLine.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatal("ib_write_bw printed no result line")
	}
	fmt.Printf("ZG: RDMA ib_write_bw bytes=%s iterations=%s bw_avg_MBps=%s\n", m[1], m[2], m[4])
}

func receiverYAML(addr, out string) string {
	return fmt.Sprintf(`
version: 1
name: recv
sources:
  in:
    type: rdma_in
    listen: %s
    accept_timeout: 60s
    window: 8MiB
    schema:
      - {name: id, type: int64}
      - {name: sym, type: string}
      - {name: px, type: float64}
sinks:
  out: {type: csv, inputs: [in], path: %s}
`, addr, out)
}

const genColumns = `
      - {name: id, type: int64, sequence: true}
      - {name: sym, type: string, cardinality: 50, null_ratio: 0.1}
      - {name: px, type: float64, min: 1, max: 100}`

type opJSON struct {
	ID          string           `json:"id"`
	BytesOut    int64            `json:"bytes_out"`
	BytesIn     int64            `json:"bytes_in"`
	BytesCopied int64            `json:"bytes_copied"`
	Copies      map[string]int64 `json:"copies"`
	References  map[string]int64 `json:"by_reference"`
	IO          string           `json:"io"`
}

func opStats(t *testing.T, path, id string) opJSON {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Operators []opJSON `json:"operators"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, o := range sum.Operators {
		if o.ID == id {
			return o
		}
	}
	t.Fatalf("%s has no operator %s", path, id)
	return opJSON{}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestTwoProcessesVerbs(t *testing.T) {
	guest(t)
	ensureDevice(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const rows = 100000
	direct := exec.Command(zflowBin(), "run", "--quiet", write("direct.yaml", fmt.Sprintf(`
version: 1
name: direct
settings: {batch_rows: 8000}
sources:
  g:
    type: generate
    rows: %d
    seed: 3
    columns:%s
sinks:
  out: {type: csv, inputs: [g], path: %s}
`, rows, genColumns, filepath.Join(dir, "direct.csv"))))
	if out, err := direct.CombinedOutput(); err != nil {
		t.Fatalf("direct run: %v\n%s", err, out)
	}
	addr := freePort(t)
	rj, sj := filepath.Join(dir, "recv.json"), filepath.Join(dir, "send.json")
	recv := exec.Command(zflowBin(), "run", "--json="+rj, write("recv.yaml", receiverYAML(addr, filepath.Join(dir, "got.csv"))))
	var rerr bytes.Buffer
	recv.Stdout, recv.Stderr = &rerr, &rerr
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	snd := exec.Command(zflowBin(), "run", "--json="+sj, write("send.yaml", fmt.Sprintf(`
version: 1
name: send
settings: {batch_rows: 8000}
sources:
  g:
    type: generate
    rows: %d
    seed: 3
    columns:%s
sinks:
  net: {type: rdma_out, inputs: [g], address: %s}
`, rows, genColumns, addr)))
	sout, serr := snd.CombinedOutput()
	werr := recv.Wait()
	t.Logf("sender:\n%s\nreceiver:\n%s", sout, rerr.String())
	if serr != nil || werr != nil {
		t.Fatalf("sender: %v, receiver: %v", serr, werr)
	}
	want, _ := os.ReadFile(filepath.Join(dir, "direct.csv"))
	got, err := os.ReadFile(filepath.Join(dir, "got.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes of CSV, the direct run wrote %d (or different rows)", len(got), len(want))
	}
	in, net := opStats(t, rj, "in"), opStats(t, sj, "net")
	for _, o := range []opJSON{in, net} {
		if !strings.HasPrefix(o.IO, "rdma/rxe") {
			t.Errorf("%s's io line %q does not say rdma/rxe", o.ID, o.IO)
		}
		if o.BytesCopied != 0 {
			t.Errorf("%s copied %d bytes: %v", o.ID, o.BytesCopied, o.Copies)
		}
	}
	if r := in.References["rdma receive region"]; r == 0 || r != in.BytesOut {
		t.Errorf("rdma_in: out %d bytes, by reference %v", in.BytesOut, in.References)
	}
	fmt.Printf("ZG: RDMA zflow verbs rows=%d bytes=%d copied_in=%d copied_out=%d\n", rows, in.BytesOut, in.BytesCopied, net.BytesCopied)
}
