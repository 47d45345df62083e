package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// Config file errors name the file, line and column of the value at fault.
func TestNvmeofServeConfigErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"subsystems:\n  - nqn: nqn.2024-01.dev.zflow:a\n    namespaces: [ram:1MiB]\nports:\n  - listen: 127.0.0.1:4420\n", ""},
		{"subsystems:\n  - nqn: nqn.2024-01.dev.zflow:a\n    namespaces: [ram:1MiB, disk:/x]\nports:\n  - listen: 127.0.0.1:4420\n",
			`c.yaml:3:28: namespace "disk:/x": want ram:SIZE or file:PATH[,size=SIZE]`},
		{"subsystems:\n  - nqn: nqn.2024-01.dev.zflow:a\n    namespaces: [ram:1MiB]\n    hosts: [x]\nports:\n  - listen: 127.0.0.1:4420\n",
			`c.yaml:4:5: unknown field "hosts"`},
		{"subsystems:\n  - nqn: nqn.2024-01.dev.zflow:a\n    namespaces: [ram:1MiB]\nports:\n  - listen: localhost\n",
			`c.yaml:5:13: listen address "localhost": want HOST:PORT`},
		{"subsystems:\n  - nqn: bad\n    namespaces: [ram:1MiB]\nports:\n  - listen: 127.0.0.1:4420\n",
			`c.yaml:2:10: subsystem NQN "bad"`},
		{"subsystems:\n  - nqn: nqn.2024-01.dev.zflow:a\n    namespaces: [ram:1000]\nports:\n  - listen: 127.0.0.1:4420\n",
			`c.yaml:3:18: namespace "ram:1000": want ram:SIZE, a positive multiple of 4KiB`},
		{"subsystems: [\n", "c.yaml:1:"},
		{"ports:\n  - listen: 127.0.0.1:4420\n", "c.yaml:1:1: no subsystems"},
	} {
		_, err := parseServeConfig("c.yaml", []byte(c.src))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.src, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)):
			t.Errorf("%q: got %v, want %s…", c.src, err, c.want)
		}
	}
}

// FuzzServeConfig: any file gives a config or an error, never a panic.
func FuzzServeConfig(f *testing.F) {
	f.Add([]byte("subsystems:\n  - nqn: nqn.2024-01.dev.zflow:a\n    namespaces: [ram:1MiB, \"file:/tmp/x,size=1MiB\"]\n    allow_hosts: [nqn.2014-08.org.nvmexpress:uuid:1]\nports:\n  - listen: 127.0.0.1:4420\n  - {listen: 127.0.0.1:8009, discovery: true}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := parseServeConfig("f.yaml", src)
		if err == nil && (len(c.Subsystems) == 0 || len(c.Ports) == 0) {
			t.Fatal("an empty config was accepted")
		}
	})
}

// The real binary serves a RAM and a file namespace and a discovery port;
// the binary's initiator commands discover, identify, write and read it
// back over loopback; SIGTERM stops it cleanly.
func TestNvmeofCLI(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	const nqn = "nqn.2024-01.dev.zflow:cli"
	img := filepath.Join(dir, "ns2.img")
	srv := exec.Command(bin, "nvmeof", "serve", "--listen", "127.0.0.1:0", "--nqn", nqn,
		"--namespace", "ram:16MiB", "--namespace", "file:"+img+",size=8MiB", "--discovery", "127.0.0.1:0")
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var ioAddr, discAddr string
	var log []string
	re := regexp.MustCompile(`listening on (\S+) \((.*)\)`)
	for ioAddr == "" || discAddr == "" {
		l, ok := <-lines
		if !ok {
			t.Fatalf("serve ended: %s", strings.Join(log, "\n"))
		}
		log = append(log, l)
		if m := re.FindStringSubmatch(l); m != nil {
			if m[2] == "discovery only" {
				discAddr = m[1]
			} else {
				ioAddr = m[1]
			}
		}
	}
	payload := bytes.Repeat([]byte("zflow nvme/tcp "), 20000) // 300000 bytes, not whole blocks
	host := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"nvmeof"}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if args[0] == "write" {
			cmd.Stdin = bytes.NewReader(payload)
		}
		if err := cmd.Run(); err != nil {
			t.Fatalf("zflow nvmeof %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.String()
	}
	out := host("discover", discAddr)
	if !strings.Contains(out, "1 record(s)") || !strings.Contains(out, nqn+"  tcp "+ioAddr) {
		t.Errorf("discover:\n%s", out)
	}
	out = host("identify", ioAddr, "--nqn", nqn)
	if !strings.Contains(out, "namespace 1: 4096 blocks of 4096 bytes") || !strings.Contains(out, "namespace 2: 16384 blocks of 512 bytes") {
		t.Errorf("identify:\n%s", out)
	}
	for _, nsid := range []string{"1", "2"} {
		host("write", ioAddr, "--nqn", nqn, "--nsid", nsid, "--offset", "1000")
		got := host("read", ioAddr, "--nqn", nqn, "--nsid", nsid, "--offset", "1000", "--length", "300000")
		if got != string(payload) {
			t.Errorf("namespace %s: read back %d bytes, not what was written", nsid, len(got))
		}
	}
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		log = append(log, l)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, strings.Join(log, "\n"))
	}
	all := strings.Join(log, "\n")
	if !strings.Contains(all, "disconnecting") || !strings.Contains(all, "stopped; every connection closed") {
		t.Errorf("serve log:\n%s", all)
	}
	// The file namespace kept what was written.
	b, err := os.ReadFile(img)
	if err != nil || !bytes.Equal(b[1000:1000+len(payload)], payload) {
		t.Errorf("the file namespace does not hold the data (%v)", err)
	}
}

// Two zflow run processes through a zflow nvmeof serve target: one writes
// a pipeline's output into a namespace, the other reads it back; the
// result equals a direct run. A namespace never written is refused.
// startServe runs `zflow nvmeof serve` on a free loopback port with the
// namespaces given, until the test ends, and returns its address.
func startServe(t *testing.T, bin, nqn string, namespaces ...string) string {
	t.Helper()
	args := []string{"nvmeof", "serve", "--listen", "127.0.0.1:0", "--nqn", nqn}
	for _, ns := range namespaces {
		args = append(args, "--namespace", ns)
	}
	srv := exec.Command(bin, args...)
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	})
	sc := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`listening on (\S+) `)
	addr := ""
	for addr == "" && sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatal("serve did not say where it listens")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	return addr
}

func TestNvmeofPipelines(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	const nqn = "nqn.2024-01.dev.zflow:pipes"
	addr := startServe(t, bin, nqn, "ram:64MiB", "ram:1MiB")
	const gen = `{type: generate, rows: 300000, seed: 7, columns: [{name: id, type: int64}, {name: name, type: string}, {name: px, type: float64}]}`
	nvme := "{type: nvme, address: " + addr + ", subnqn: " + nqn + ", nsid: %d, offset: %d, queues: 4, queue_depth: 16%s}"
	run := func(name, yaml string) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, "run", "--quiet", writeTemp(t, dir, name+".yaml", yaml))
		cmd.Dir = dir
		var errb bytes.Buffer
		cmd.Stderr = &errb
		cmd.Run()
		return cmd.ProcessState.ExitCode(), errb.String()
	}
	if code, e := run("direct", "version: 1\nname: direct\nsources:\n  g: "+gen+"\nsinks:\n  out: {type: csv, inputs: [g], path: direct.csv}\n"); code != 0 {
		t.Fatalf("direct run: exit %d\n%s", code, e)
	}
	if code, e := run("write", "version: 1\nname: w\nsources:\n  g: "+gen+"\nsinks:\n  out: "+
		fmt.Sprintf(nvme, 1, 8192, ", inputs: [g]")+"\n"); code != 0 {
		t.Fatalf("writer: exit %d\n%s", code, e)
	}
	if code, e := run("read", "version: 1\nname: r\nsources:\n  n: "+fmt.Sprintf(nvme, 1, 8192, "")+
		"\nsinks:\n  out: {type: csv, inputs: [n], path: back.csv}\n"); code != 0 {
		t.Fatalf("reader: exit %d\n%s", code, e)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "direct.csv"))
	b, _ := os.ReadFile(filepath.Join(dir, "back.csv"))
	if len(a) < 1<<20 || !bytes.Equal(a, b) {
		t.Fatalf("read back %d bytes of CSV, the direct run wrote %d; equal %v", len(b), len(a), bytes.Equal(a, b))
	}
	// Namespace 2 was never written: no header, a clear error, exit 2.
	code, e := run("empty", "version: 1\nname: e\nsources:\n  n: "+fmt.Sprintf(nvme, 2, 0, "")+
		"\nsinks:\n  out: {type: discard, inputs: [n]}\n")
	if code == 0 || !strings.Contains(e, "holds no zflow stream") {
		t.Fatalf("reading a namespace without a stream: exit %d\n%s", code, e)
	}
	// A stream larger than the namespace fails the writer; the namespace
	// then holds no valid stream.
	if code, e := run("toobig", "version: 1\nname: big\nsources:\n  g: "+gen+"\nsinks:\n  out: "+
		fmt.Sprintf(nvme, 2, 0, ", inputs: [g]")+"\n"); code == 0 || !strings.Contains(e, "outgrows") {
		t.Fatalf("writing past the namespace: exit %d\n%s", code, e)
	}
	if code, e := run("empty2", "version: 1\nname: e\nsources:\n  n: "+fmt.Sprintf(nvme, 2, 0, "")+
		"\nsinks:\n  out: {type: discard, inputs: [n]}\n"); code == 0 || !strings.Contains(e, "holds no zflow stream") {
		t.Fatalf("after a failed writer: exit %d\n%s", code, e)
	}
}

// dropProxy forwards TCP connections to target and cuts the first one
// whose client-to-target bytes pass after: a real socket dropped in the
// middle of a transfer, once. Later connections (the reconnect) pass.
type dropProxy struct {
	ln      net.Listener
	target  string
	after   int64
	dropped atomic.Bool
	wg      sync.WaitGroup
}

func startDropProxy(t *testing.T, target string, after int64) *dropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, target: target, after: after}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.pipe(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *dropProxy) pipe(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{})
	go func() { // target to client
		defer close(done)
		io.Copy(c, s)
		c.Close()
	}()
	var sent int64
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			sent += int64(n)
			if sent > p.after && p.dropped.CompareAndSwap(false, true) {
				break // cut both directions mid-transfer
			}
			if _, werr := s.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	s.Close()
	c.Close()
	<-done
}

// TestNvmeofPipelineReconnects: an nvme sink whose I/O connection is cut
// in the middle of the stream reconnects (reconnect_timeout, on by
// default), sends the writes in flight again and commits; the stream reads
// back equal to a direct run, and the run says on stderr that the
// connection was lost and restored. With reconnect_timeout: 0 the same cut
// fails the run and leaves no valid stream.
func TestNvmeofPipelineReconnects(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	const nqn = "nqn.2024-01.dev.zflow:reconnect"
	addr := startServe(t, bin, nqn, "ram:64MiB")
	const gen = `{type: generate, rows: 400000, seed: 11, columns: [{name: id, type: int64}, {name: name, type: string}, {name: px, type: float64}]}`
	nvme := "{type: nvme, address: %s, subnqn: " + nqn + ", offset: 0, queues: 2, queue_depth: 8%s}"
	run := func(name, yaml string) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, "run", "--quiet", "--log-level", "warn", writeTemp(t, dir, name+".yaml", yaml))
		cmd.Dir = dir
		var errb bytes.Buffer
		cmd.Stderr = &errb
		cmd.Run()
		return cmd.ProcessState.ExitCode(), errb.String()
	}
	if code, e := run("direct", "version: 1\nname: direct\nsources:\n  g: "+gen+"\nsinks:\n  out: {type: csv, inputs: [g], path: direct.csv}\n"); code != 0 {
		t.Fatalf("direct run: exit %d\n%s", code, e)
	}
	readBack := func() (int, string) {
		return run("read", "version: 1\nname: r\nsources:\n  n: "+fmt.Sprintf(nvme, addr, "")+
			"\nsinks:\n  out: {type: csv, inputs: [n], path: back.csv}\n")
	}

	// Without reconnecting, the cut fails the writer and no stream is left.
	p0 := startDropProxy(t, addr, 4<<20)
	code, e := run("nore", "version: 1\nname: w0\nsources:\n  g: "+gen+"\nsinks:\n  out: "+
		fmt.Sprintf(nvme, p0.ln.Addr(), ", reconnect_timeout: 0s, inputs: [g]")+"\n")
	if code == 0 || !p0.dropped.Load() {
		t.Fatalf("a cut connection without reconnect_timeout: exit %d, dropped %v\n%s", code, p0.dropped.Load(), e)
	}
	if code, e := readBack(); code == 0 || !strings.Contains(e, "holds no zflow stream") {
		t.Fatalf("after a failed writer: exit %d\n%s", code, e)
	}

	// With the default, the writer reconnects and commits.
	p := startDropProxy(t, addr, 4<<20)
	code, e = run("write", "version: 1\nname: w\nsources:\n  g: "+gen+"\nsinks:\n  out: "+
		fmt.Sprintf(nvme, p.ln.Addr(), ", inputs: [g]")+"\n")
	if code != 0 {
		t.Fatalf("writer through a cut connection: exit %d\n%s", code, e)
	}
	if !p.dropped.Load() || !strings.Contains(e, "lost and restored") {
		t.Fatalf("the proxy cut a connection: %v; the writer's stderr:\n%s", p.dropped.Load(), e)
	}
	if code, e := readBack(); code != 0 {
		t.Fatalf("reader: exit %d\n%s", code, e)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "direct.csv"))
	b, _ := os.ReadFile(filepath.Join(dir, "back.csv"))
	if len(a) < 8<<20 || !bytes.Equal(a, b) {
		t.Fatalf("read back %d bytes of CSV, the direct run wrote %d; equal %v", len(b), len(a), bytes.Equal(a, b))
	}
}
