//go:build linux

package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The veth half: two namespaces joined by a veth pair, the sender in
// nsSend (vethSend, sendIP) and every receiver in nsRecv (vethRecv,
// recvIP). Fixed names, so that a run can find and remove what a killed
// run left behind.
const (
	nsSend   = "zflow-bench-net-a"
	nsRecv   = "zflow-bench-net-b"
	vethSend = "zbnet-a"
	vethRecv = "zbnet-b"
	sendIP   = "10.211.0.1"
	recvIP   = "10.211.0.2"
)

// network is where one half of the table runs: loopback (no namespaces)
// or the veth pair.
type network struct {
	name      string // "loopback" or "veth"
	sendNS    string // "" for the current namespace
	recvNS    string
	recvIP    string
	recvAddr  string // our receiver's HOST:PORT
	iperfPort int
	children  []*exec.Cmd // receivers and iperf3 servers, killed by stop
}

func loopback() *network { return &network{name: "loopback", recvIP: "127.0.0.1"} }

// inNS prefixes args with `ip netns exec ns` when ns is set.
func inNS(ns string, args []string) []string {
	if ns == "" {
		return args
	}
	return append([]string{"ip", "netns", "exec", ns}, args...)
}

// senderCmd runs args where the sender lives; receiverCmd where the
// receivers do. Children die with the benchmark (Pdeathsig) and are
// killed by stop.
func (n *network) senderCmd(ctx context.Context, args ...string) *exec.Cmd {
	return command(ctx, inNS(n.sendNS, args))
}

func (n *network) receiverCmd(ctx context.Context, args ...string) *exec.Cmd {
	return command(ctx, inNS(n.recvNS, args))
}

func command(ctx context.Context, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// stop kills the long-lived children of n and waits for them.
func (n *network) stop() {
	for _, c := range n.children {
		if c.Process != nil {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	n.children = nil
}

// setupVeth removes what an earlier run left and creates the namespaces,
// the veth pair, its addresses, and brings the links up. The caller calls
// removeVeth when done (also on SIGINT).
func setupVeth() (*network, error) {
	removeVeth()
	steps := [][]string{
		{"netns", "add", nsSend},
		{"netns", "add", nsRecv},
		{"link", "add", vethSend, "netns", nsSend, "type", "veth", "peer", "name", vethRecv, "netns", nsRecv},
		{"-n", nsSend, "addr", "add", sendIP + "/24", "dev", vethSend},
		{"-n", nsRecv, "addr", "add", recvIP + "/24", "dev", vethRecv},
		{"-n", nsSend, "link", "set", "lo", "up"},
		{"-n", nsRecv, "link", "set", "lo", "up"},
		{"-n", nsSend, "link", "set", vethSend, "up"},
		{"-n", nsRecv, "link", "set", vethRecv, "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			removeVeth()
			return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return &network{name: "veth", sendNS: nsSend, recvNS: nsRecv, recvIP: recvIP}, nil
}

// removeVeth kills the processes still in the benchmark's namespaces (a
// killed earlier run's receivers) and deletes them, which deletes the veth
// pair. Missing namespaces are not an error.
func removeVeth() {
	for _, ns := range []string{nsSend, nsRecv} {
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			continue
		}
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			log.Printf("net: ip netns del %s: %v: %s", ns, err, strings.TrimSpace(string(out)))
		}
	}
}

// dialIn connects to addr from network namespace ns ("" the current one).
// The socket is made on an OS thread moved into ns (a socket keeps the
// namespace it was made in), in a goroutine of its own: the thread is
// moved back before it is unlocked, and if that fails the goroutine ends
// locked, which retires the thread.
func dialIn(ns, addr string) (*net.TCPConn, error) {
	if ns == "" {
		return dialTCP(addr)
	}
	type result struct {
		c   *net.TCPConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := dialLocked(ns, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func dialTCP(addr string) (*net.TCPConn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

func dialLocked(ns, addr string) (*net.TCPConn, error) {
	runtime.LockOSThread()
	own, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer own.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns %s: %w", ns, err)
	}
	c, derr := dialTCP(addr)
	if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("setns back from %s: %w", ns, err) // the thread stays locked and retires
	}
	runtime.UnlockOSThread()
	return c, derr
}
