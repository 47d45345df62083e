//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// The receiver and the iperf3 server live for the whole half of the run
// in the receiving namespace; their ports: our receiver's is the one it
// prints, iperf3's is picked free (loopback) or fixed (the namespace is
// ours alone).
const iperfPortVeth = 5201

// startServers starts the receiver (this binary, re-executed with
// -receiver) and an iperf3 server for n; n.stop ends them.
func startServers(ctx context.Context, n *network, exe string) (recvAddr string, err error) {
	rc := n.receiverCmd(ctx, exe, "-receiver", "-listen", net.JoinHostPort(n.recvIP, "0"))
	rc.Stderr = os.Stderr
	stdout, err := rc.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := rc.Start(); err != nil {
		return "", fmt.Errorf("start the receiver: %w", err)
	}
	n.children = append(n.children, rc)
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		return "", fmt.Errorf("the receiver in %s said nothing: %v", n.name, sc.Err())
	}
	recvAddr, ok := strings.CutPrefix(sc.Text(), "listening ")
	if !ok {
		return "", fmt.Errorf("the receiver in %s: %s", n.name, sc.Text())
	}
	go func() { // later lines are the receiver's errors
		for sc.Scan() {
			fmt.Fprintln(os.Stderr, sc.Text())
		}
	}()
	n.iperfPort = iperfPortVeth
	if n.recvNS == "" {
		if n.iperfPort, err = freePort(n.recvIP); err != nil {
			return "", err
		}
	}
	ic := n.receiverCmd(ctx, "iperf3", "-s", "-B", n.recvIP, "-p", strconv.Itoa(n.iperfPort))
	if err := ic.Start(); err != nil {
		return "", fmt.Errorf("start iperf3 -s: %w", err)
	}
	n.children = append(n.children, ic)
	return recvAddr, waitListening(ic.Process.Pid, n.iperfPort, 5*time.Second)
}

// freePort is a TCP port on ip nobody listens on now.
func freePort(ip string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until process pid's network namespace has a socket
// listening on port (from /proc/PID/net/tcp and tcp6), so that a client
// started next finds it; connecting to find out would use up a one-shot
// server's only connection.
func waitListening(pid, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		for _, f := range []string{"tcp", "tcp6"} {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
			if err == nil && hasListener(string(b), port) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on port %d after %v (process %d)", port, timeout, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hasListener says whether a /proc/net/tcp table has a socket in state
// LISTEN (0A) on port.
func hasListener(table string, port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
			return true
		}
	}
	return false
}
