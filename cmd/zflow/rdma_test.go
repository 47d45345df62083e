//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRDMATwoProcesses runs rdma_out and rdma_in in two zflow processes on
// loopback, on both emulated transports, and compares what arrives with
// the same rows written directly; the receiving side copies nothing. Then
// it kills either side mid-stream.
func TestRDMATwoProcesses(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	run := func(json string, yaml string) *exec.Cmd {
		args := []string{"run", "--quiet"}
		if json != "" {
			args = append(args, "--json="+json)
		}
		cmd := exec.Command(bin, append(args, writeTemp(t, dir, fmt.Sprintf("p%d.yaml", time.Now().UnixNano()), yaml))...)
		cmd.Dir = dir
		cmd.Stderr = new(bytes.Buffer)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	stderr := func(c *exec.Cmd) string { return c.Stderr.(*bytes.Buffer).String() }
	direct := run("", `
version: 1
name: direct
settings: {batch_rows: 7000}
sources:
  g:
    type: generate
    rows: 300000
    seed: 3
    columns:`+tcpColumns+`
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
	receiver := func(addr, out string) string {
		return fmt.Sprintf(`
version: 1
name: recv
sources:
  in:
    type: rdma_in
    listen: %s
    accept_timeout: 30s
    window: 8MiB
    schema:%s
sinks:
  out: {type: csv, inputs: [in], path: %s}
`, addr, tcpSchema, out)
	}
	for _, emu := range []string{"mapped", "tcp"} {
		t.Run(emu, func(t *testing.T) {
			addr := freePort(t)
			out := "rdma_" + emu + ".csv"
			rj, sj := filepath.Join(dir, "recv_"+emu+".json"), filepath.Join(dir, "send_"+emu+".json")
			recv := run(rj, receiver(addr, out))
			snd := run(sj, fmt.Sprintf(`
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
  net: {type: rdma_out, inputs: [g], address: %s, emulation: %s}
`, tcpColumns, addr, emu))
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
			rsum, _ := os.ReadFile(rj)
			ssum, _ := os.ReadFile(sj)
			in, net := opStats(t, rsum, "in"), opStats(t, ssum, "net")
			region := in.References["rdma receive region"]
			if region == 0 || region != in.BytesOut {
				t.Errorf("rdma_in: out %d bytes, by reference %v", in.BytesOut, in.References)
			}
			switch emu {
			case "mapped":
				// Nothing is copied on the receiving side; the sender's
				// emulated DMA is counted there.
				if in.BytesCopied != 0 {
					t.Errorf("rdma_in copied %d bytes: %v", in.BytesCopied, in.Copies)
				}
				if net.Copies["rdma write (emulated: the CPU copies what a NIC would DMA)"] < in.BytesOut {
					t.Errorf("rdma_out's copies %v", net.Copies)
				}
			case "tcp":
				if in.Copies["rdma receive (emulated over TCP: kernel copy into the region)"] < in.BytesOut {
					t.Errorf("rdma_in's copies %v", in.Copies)
				}
			}
			if net.Copies["rdma staging (buffer outside registered memory)"] != 0 {
				t.Errorf("rdma_out staged buffers from the arena: %v", net.Copies)
			}
		})
	}

	endless := func(addr string) string {
		return fmt.Sprintf(`
version: 1
name: endless
sources:
  g:
    type: generate
    rows: 1000000000000
    columns:%s
sinks:
  net: {type: rdma_out, inputs: [g], address: %s}
`, tcpColumns, addr)
	}
	t.Run("kill sender", func(t *testing.T) {
		addr := freePort(t)
		out := "killed_sender.csv"
		recv := run("", receiver(addr, out))
		snd := run("", endless(addr))
		time.Sleep(1500 * time.Millisecond)
		if snd.ProcessState != nil {
			t.Fatalf("the sender exited early: %s", stderr(snd))
		}
		snd.Process.Signal(syscall.SIGKILL)
		snd.Wait()
		if err := recv.Wait(); err == nil {
			t.Fatal("the receiver succeeded after its sender was killed")
		}
		if msg := stderr(recv); !strings.Contains(msg, "of a stream that did not end") {
			t.Fatalf("the receiver's error does not say the stream was cut:\n%s", msg)
		}
		if _, err := os.Stat(filepath.Join(dir, out)); !os.IsNotExist(err) {
			t.Fatalf("the receiver left %s: %v", out, err)
		}
	})
	t.Run("kill receiver", func(t *testing.T) {
		addr := freePort(t)
		recv := run("", receiver(addr, "killed_receiver.csv"))
		snd := run("", endless(addr))
		time.Sleep(1500 * time.Millisecond)
		if recv.ProcessState != nil {
			t.Fatalf("the receiver exited early: %s", stderr(recv))
		}
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
		if msg := stderr(snd); !strings.Contains(msg, "rdma_out") || !strings.Contains(msg, "the receiver's control connection ended") && !strings.Contains(msg, "peer closed") {
			t.Fatalf("the sender's error does not say the receiver went away:\n%s", msg)
		}
	})
}
