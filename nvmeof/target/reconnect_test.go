package target_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zflowdev/zflow/nvmeof/initiator"
	"github.com/zflowdev/zflow/nvmeof/nvme"
	"github.com/zflowdev/zflow/nvmeof/pdu"
	"github.com/zflowdev/zflow/nvmeof/target"
)

// faultConn is a real TCP connection whose traffic a test may change on
// its way: onWrite sees each Write (numbered from 1; pdu.Conn writes a
// PDU's header region in one of them) and returns what to send; onRead
// sees what each Read got, at its offset in the stream, and may change
// it in place. It records whether the host sent an H2CTermReq.
type faultConn struct {
	net.Conn
	onWrite func(n int, b []byte) []byte
	onRead  func(off int64, b []byte)

	mu       sync.Mutex
	writes   int
	read     int64
	termSent bool
}

func (c *faultConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	n := c.writes
	if len(b) >= 8 && b[0] == byte(pdu.TypeH2CTermReq) {
		c.termSent = true
	}
	c.mu.Unlock()
	out := b
	if c.onWrite != nil {
		out = c.onWrite(n, append([]byte(nil), b...))
	}
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *faultConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	off := c.read
	c.read += int64(n)
	c.mu.Unlock()
	if c.onRead != nil {
		c.onRead(off, b[:n])
	}
	return n, err
}

func (c *faultConn) sentTerm() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.termSent
}

// dialNth wraps the nth connection the initiator opens (1: the admin
// queue, 2: I/O queue 1, ...) with wrap; the others are plain.
func dialNth(nth int32, wrap func(net.Conn) net.Conn) func(context.Context, string) (net.Conn, error) {
	var dials atomic.Int32
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil || dials.Add(1) != nth {
			return nc, err
		}
		return wrap(nc), nil
	}
}

// reconnecting is an initiator configuration that reconnects.
func reconnecting(queues int) initiator.Config {
	return initiator.Config{IOQueues: queues, ReconnectTimeout: 20 * time.Second, ReconnectDelay: 20 * time.Millisecond}
}

// A connection dropped mid-transfer, in a write's H2CData and in a read's
// C2HData: the controller reconnects (the whole association), the command
// is sent again and succeeds, the data reads back, and the failure that
// made it reconnect is reported.
func TestReconnectDroppedMidTransfer(t *testing.T) {
	for _, dir := range []string{"write", "read"} {
		t.Run(dir, func(t *testing.T) {
			addr, _ := serve(t, 4<<20, target.Config{MaxH2CData: 8192, C2HChunk: 8192})
			cfg := reconnecting(2)
			data := bytes.Repeat([]byte{0x5A}, 256<<10)
			var cut func(net.Conn) net.Conn
			if dir == "write" {
				cut = func(nc net.Conn) net.Conn { return &cutConn{Conn: nc, left: 64 << 10} }
			} else {
				// the connection closes once 64 KiB of the read's data arrived
				cut = func(nc net.Conn) net.Conn {
					fc := &faultConn{Conn: nc}
					fc.onRead = func(off int64, b []byte) {
						if off+int64(len(b)) > 64<<10 {
							nc.Close()
						}
					}
					return fc
				}
			}
			if dir == "read" {
				// the data is written first, through a plain connection
				c := connect(t, addr, initiator.Config{})
				ns, _ := c.Namespace(1)
				if err := c.Write(0, ns, 0, data); err != nil {
					t.Fatal(err)
				}
				c.Close()
			}
			cfg.Dial = dialNth(2, cut)
			ctrl := connect(t, addr, cfg)
			ns, err := ctrl.Namespace(1)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(data))
			if dir == "write" {
				err = ctrl.Write(0, ns, 0, data)
			} else {
				err = ctrl.Read(0, ns, 0, got)
			}
			if err != nil {
				t.Fatalf("%s across a dropped connection: %v", dir, err)
			}
			if err := ctrl.Read(1, ns, 0, got); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back: %v (equal %v)", err, bytes.Equal(got, data))
			}
			if n, fail := ctrl.Reconnects(), ctrl.LastFailure(); n != 1 || !errors.Is(fail, initiator.ErrQueueFailed) {
				t.Fatalf("%d reconnections, last failure %v; want 1 and a queue failure", n, fail)
			}
			// The new association is a new dynamic controller: its id is
			// what Association says, and what Identify through it says.
			id, ident := ctrl.Association()
			if id == ctrl.CntlID || ident.CntlID != id || ident.SN != ctrl.Identify.SN {
				t.Fatalf("after reconnecting: association's cntlid %d (identify %d, serial %q), the first one's %d (serial %q)",
					id, ident.CntlID, ident.SN, ctrl.CntlID, ctrl.Identify.SN)
			}
			if err := ctrl.Close(); err != nil {
				t.Fatalf("disconnect after reconnecting: %v", err)
			}
		})
	}
}

// firstWrite is an onWrite that changes the header region (of size n) of
// the first Write command's CapsuleCmd.
func firstWrite(change func(b []byte), n int) func(int, []byte) []byte {
	done := false
	return func(_ int, b []byte) []byte {
		if !done && len(b) == n && b[0] == byte(pdu.TypeCapsuleCmd) && b[8] == nvme.IOWrite {
			change(b)
			done = true
		}
		return b
	}
}

// A damaged PDU either way: the side that gets it answers with the
// TermReq the spec asks for and closes, and the initiator reconnects and
// runs the command again.
func TestReconnectAfterTermReq(t *testing.T) {
	data := bytes.Repeat([]byte{0x5A}, 4096) // in the capsule
	cases := []struct {
		name    string
		digests bool
		wrap    func(*faultConn)
		check   func(t *testing.T, fail error, fc *faultConn)
	}{
		{"corrupt header digest to the target", true,
			func(fc *faultConn) {
				fc.onWrite = firstWrite(func(b []byte) { b[72] ^= 1 }, 72+4)
			},
			func(t *testing.T, fail error, _ *faultConn) {
				var te *initiator.TermError
				if !errors.As(fail, &te) || te.FES != pdu.FESHeaderDigest {
					t.Fatalf("failure %v, want the target's C2HTermReq with FES 3 (header digest)", fail)
				}
			}},
		{"malformed PDU to the target", false,
			func(fc *faultConn) {
				fc.onWrite = firstWrite(func(b []byte) { b[2] = 0x30 }, 72) // HLEN 48 on a CapsuleCmd (72)
			},
			func(t *testing.T, fail error, _ *faultConn) {
				var te *initiator.TermError
				if !errors.As(fail, &te) || te.FES != pdu.FESInvalidHeaderField || te.FEI != 2 {
					t.Fatalf("failure %v, want the target's C2HTermReq with FES 1 at byte 2 (HLEN)", fail)
				}
			}},
		{"malformed PDU to the host", false,
			// ICResp (128), the Connect's CapsuleResp (24), then the write's
			// CapsuleResp: its HLEN byte
			func(fc *faultConn) {
				fc.onRead = func(off int64, b []byte) {
					if i := 128 + 24 + 2 - off; i >= 0 && i < int64(len(b)) {
						b[i] = 0x30
					}
				}
			},
			func(t *testing.T, fail error, fc *faultConn) {
				var pe *pdu.Error
				if !errors.As(fail, &pe) || pe.FES != pdu.FESInvalidHeaderField {
					t.Fatalf("failure %v, want a *pdu.Error with FES 1", fail)
				}
				if !fc.sentTerm() {
					t.Fatal("the initiator sent no H2CTermReq")
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr, _ := serve(t, 1<<20, target.Config{})
			cfg := reconnecting(1)
			cfg.HeaderDigest, cfg.DataDigest = c.digests, c.digests
			var fc *faultConn
			cfg.Dial = dialNth(2, func(nc net.Conn) net.Conn {
				fc = &faultConn{Conn: nc}
				c.wrap(fc)
				return fc
			})
			ctrl := connect(t, addr, cfg)
			ns, err := ctrl.Namespace(1)
			if err != nil {
				t.Fatal(err)
			}
			if err := ctrl.Write(0, ns, 8, data); err != nil {
				t.Fatalf("write across the fault: %v", err)
			}
			got := make([]byte, len(data))
			if err := ctrl.Read(0, ns, 8, got); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back: %v", err)
			}
			if ctrl.Reconnects() != 1 {
				t.Fatalf("%d reconnections, want 1", ctrl.Reconnects())
			}
			c.check(t, ctrl.LastFailure(), fc)
		})
	}
}

// When the target stays away, reconnecting gives up after
// ReconnectTimeout: the command fails with an error that says so, and so
// does every later one, at once.
func TestReconnectGivesUp(t *testing.T) {
	addr, tg := serve(t, 1<<20, target.Config{})
	cfg := initiator.Config{ReconnectTimeout: 300 * time.Millisecond, ReconnectDelay: 20 * time.Millisecond}
	ctrl := connect(t, addr, cfg)
	ns, err := ctrl.Namespace(1)
	if err != nil {
		t.Fatal(err)
	}
	tg.Close()
	err = ctrl.Read(0, ns, 0, make([]byte, 4096))
	if err == nil || !strings.Contains(err.Error(), "lost") || !strings.Contains(err.Error(), "reconnection attempts") {
		t.Fatalf("read with the target gone: %v", err)
	}
	if err2 := ctrl.Write(0, ns, 0, make([]byte, 4096)); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("the next command: %v, want %v", err2, err)
	}
	ctrl.Close()
}

// helperEnv names the file namespace of a target process (TestMain).
const helperEnv = "ZFLOW_NVMEOF_TARGET_FILE"

// targetProcess serves the file namespace named by helperEnv on the
// address in ZFLOW_NVMEOF_TARGET_ADDR, prints the address, and serves
// until it is killed.
func targetProcess(path string) {
	f, err := target.OpenFile(path, 8<<20)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	tg, err := target.New(target.Config{SubNQN: subNQN, Namespaces: []target.Namespace{f}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", os.Getenv("ZFLOW_NVMEOF_TARGET_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(ln.Addr())
	tg.Serve(ln)
}

// startTarget runs this test binary as a target process on addr and
// returns it and the address it listens on.
func startTarget(t *testing.T, path, addr string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path, "ZFLOW_NVMEOF_TARGET_ADDR="+addr)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("target process: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, strings.TrimSpace(line)
}

// The target process killed (SIGKILL) and started again on the same file
// and port: a write acknowledged and then flushed before the kill reads
// back after it, through the same Controller, which reconnected; a read
// issued while the target was down waits for the reconnection and
// succeeds.
func TestReconnectTargetKilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ns")
	proc, addr := startTarget(t, path, "127.0.0.1:0")
	ctrl := connect(t, addr, reconnecting(2))
	ns, err := ctrl.Namespace(1)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("survives a kill"), 64<<10/15+1)[:64<<10]
	if err := ctrl.Write(1, ns, 64, data); err != nil {
		t.Fatal(err)
	}
	if err := ctrl.Flush(1, ns); err != nil {
		t.Fatal(err)
	}
	proc.Process.Signal(syscall.SIGKILL)
	proc.Wait()
	got := make([]byte, len(data))
	read := make(chan error, 1)
	go func() { read <- ctrl.Read(0, ns, 64, got) }()
	startTarget(t, path, addr)
	if err := <-read; err != nil {
		t.Fatalf("read across the restart: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the flushed write reads back different after the restart")
	}
	if n := ctrl.Reconnects(); n != 1 {
		t.Fatalf("%d reconnections, want 1", n)
	}
	if err := ctrl.Close(); err != nil {
		t.Fatalf("disconnect: %v", err)
	}
}
