package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback address no one listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

const tcpColumns = `
      - {name: id, type: int64, sequence: true}
      - {name: sym, type: string, cardinality: 50, null_ratio: 0.1}
      - {name: px, type: float64, min: 1, max: 100}
      - {name: ok, type: bool}
      - {name: ts, type: timestamp}`

const tcpSchema = `
      - {name: id, type: int64}
      - {name: sym, type: string}
      - {name: px, type: float64}
      - {name: ok, type: bool}
      - {name: ts, type: timestamp_us}`

// TestTCPTwoProcesses runs tcp_out and tcp_in in two zflow processes on
// loopback, with both protocols, and compares what arrives with the same
// rows written directly; then kills either side mid-stream.
func TestTCPTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	run := func(yaml string) *exec.Cmd {
		cmd := exec.Command(bin, "run", "--quiet", writeTemp(t, dir, fmt.Sprintf("p%d.yaml", time.Now().UnixNano()), yaml))
		cmd.Dir = dir
		cmd.Stderr = new(bytes.Buffer)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	stderr := func(c *exec.Cmd) string { return c.Stderr.(*bytes.Buffer).String() }
	direct := run(`
version: 1
name: direct
sources:
  g:
    type: generate
    rows: 300000
    seed: 3
    columns:` + tcpColumns + `
sinks:
  out: {type: csv, inputs: [g], path: direct.csv}
`)
	if err := direct.Wait(); err != nil {
		t.Fatalf("direct run: %v\n%s", err, stderr(direct))
	}
	want, err := os.ReadFile(filepath.Join(dir, "direct.csv"))
	if err != nil {
		t.Fatal(err)
	}

	type pathPair struct{ send, recv string }
	pairs := []pathPair{{"auto", "auto"}, {"copy", "read"}, {"msg_zerocopy", "uring_multishot"}, {"uring_zc", "uring_multishot"},
		{"uring_zc, fixed_buffers: true", "read"}}
	for _, proto := range []string{"zflow", "arrow"} {
		for _, pp := range pairs {
			send := pp.send
			name := strings.NewReplacer(", ", "+", ": ", "=").Replace(send)
			t.Run(proto+"/"+name+"/"+pp.recv, func(t *testing.T) {
				addr := freePort(t)
				out := proto + "_" + strings.NewReplacer("+", "_", "=", "_").Replace(name) + "_" + pp.recv + ".csv"
				recv := run(fmt.Sprintf(`
version: 1
name: recv
sources:
  in:
    type: tcp_in
    listen: %s
    protocol: %s
    recv: %s
    accept_timeout: 30s
    schema:%s
sinks:
  out: {type: csv, inputs: [in], path: %s}
`, addr, proto, pp.recv, tcpSchema, out))
				snd := run(fmt.Sprintf(`
version: 1
name: send
settings: {batch_rows: 7000}
sources:
  g:
    type: generate
    rows: 300000
    seed: 3
    columns:%s
sinks:
  net: {type: tcp_out, inputs: [g], address: %s, protocol: %s, send: %s}
`, tcpColumns, addr, proto, send))
				if err := snd.Wait(); err != nil {
					t.Fatalf("sender: %v\n%s", err, stderr(snd))
				}
				if err := recv.Wait(); err != nil {
					t.Fatalf("receiver: %v\n%s", err, stderr(recv))
				}
				got, err := os.ReadFile(filepath.Join(dir, out))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("received %d bytes of CSV, the direct run wrote %d (or different rows)", len(got), len(want))
				}
			})
		}
	}

	endless := func(addr, proto, send string) string {
		return fmt.Sprintf(`
version: 1
name: endless
sources:
  g:
    type: generate
    rows: 1000000000000
    columns:%s
sinks:
  net: {type: tcp_out, inputs: [g], address: %s, protocol: %s, send: %s}
`, tcpColumns, addr, proto, send)
	}
	receiver := func(addr, proto, out string, recv ...string) string {
		mode := "auto"
		if len(recv) > 0 {
			mode = recv[0]
		}
		return fmt.Sprintf(`
version: 1
name: recv
sources:
  in:
    type: tcp_in
    listen: %s
    protocol: %s
    recv: %s
    accept_timeout: 30s
    schema:%s
sinks:
  out: {type: csv, inputs: [in], path: %s}
`, addr, proto, mode, tcpSchema, out)
	}
	// waitBytes waits until the receiver has taken some batches: its output
	// file's temporary sibling exists (nothing under the final name).
	waitData := func(t *testing.T, c *exec.Cmd, d time.Duration) {
		t.Helper()
		time.Sleep(d)
		if c.ProcessState != nil {
			t.Fatalf("exited early: %s", stderr(c))
		}
	}
	for _, proto := range []string{"zflow", "arrow"} {
		for _, rmode := range []string{"read", "uring_multishot"} {
			t.Run("kill sender/"+proto+"/"+rmode, func(t *testing.T) {
				addr := freePort(t)
				out := "killed_sender_" + proto + "_" + rmode + ".csv"
				recv := run(receiver(addr, proto, out, rmode))
				snd := run(endless(addr, proto, "auto"))
				waitData(t, snd, 1500*time.Millisecond)
				snd.Process.Signal(syscall.SIGKILL)
				snd.Wait()
				err := recv.Wait()
				if err == nil {
					t.Fatal("the receiver succeeded after its sender was killed")
				}
				if msg := stderr(recv); !strings.Contains(msg, "of a stream that did not end") {
					t.Fatalf("receiver's error does not say the stream was cut:\n%s", msg)
				}
				if _, err := os.Stat(filepath.Join(dir, out)); !os.IsNotExist(err) {
					t.Fatalf("the receiver left %s: %v", out, err)
				}
			})
		}
		for _, send := range []string{"auto", "uring_zc"} {
			t.Run("kill receiver/"+proto+"/"+send, func(t *testing.T) {
				addr := freePort(t)
				recv := run(receiver(addr, proto, "killed_receiver_"+proto+"_"+send+".csv"))
				snd := run(endless(addr, proto, send))
				waitData(t, recv, 1500*time.Millisecond)
				recv.Process.Signal(syscall.SIGKILL)
				recv.Wait()
				done := make(chan error, 1)
				go func() { done <- snd.Wait() }()
				select {
				case err := <-done:
					if err == nil {
						t.Fatal("the sender succeeded after its receiver was killed")
					}
				case <-time.After(20 * time.Second):
					snd.Process.Kill()
					<-done
					t.Fatal("the sender did not notice its receiver was killed in 20 s")
				}
				msg := stderr(snd)
				if !strings.Contains(msg, "tcp_out") || !(strings.Contains(msg, "closed the connection") || strings.Contains(msg, "reset by peer") || strings.Contains(msg, "broken pipe")) {
					t.Fatalf("the sender's error does not say the receiver went away:\n%s", msg)
				}
			})
		}
	}
}
