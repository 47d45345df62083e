//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// fioArgs is the fio command line of a baseline measurement on the
// namespace's backing file: one job, buffered (the target reads and
// writes the file through the page cache too) and without fio's
// invalidation of the file's cached pages at the start (fio would drop
// the cache the target reads from), time-based, JSON output.
// Random reads go without fio's random map, as ours draw offsets.
func fioArgs(m *Measure, file string, size int64, d time.Duration) []string {
	rw := map[[2]bool]string{{false, false}: "read", {true, false}: "randread", {false, true}: "write"}[[2]bool{m.Random, m.Write}]
	a := []string{"--name=nvmeof-baseline", "--filename=" + file, "--rw=" + rw,
		"--bs=" + strconv.Itoa(m.Block), "--iodepth=" + strconv.Itoa(m.Depth), "--ioengine=" + m.Engine,
		"--size=" + strconv.FormatInt(size, 10), "--invalidate=0", "--output-format=json",
		"--time_based", fmt.Sprintf("--runtime=%dms", d.Milliseconds())}
	if m.Random {
		a = append(a, "--norandommap", "--randrepeat=0")
	}
	if !m.Write {
		a = append(a, "--readonly")
	}
	return a
}

// fioOut is the part of fio's JSON report read here (fio 3.x).
type fioOut struct {
	Jobs []struct {
		Error int `json:"error"`
		Read  struct {
			IOBytes int64 `json:"io_bytes"`
			TotalIO int64 `json:"total_ios"`
			Runtime int64 `json:"runtime"` // ms
		} `json:"read"`
		Write struct {
			IOBytes int64 `json:"io_bytes"`
			TotalIO int64 `json:"total_ios"`
			Runtime int64 `json:"runtime"`
		} `json:"write"`
		UsrCPU float64 `json:"usr_cpu"`
		SysCPU float64 `json:"sys_cpu"`
	} `json:"jobs"`
}

// runFio runs fio for m and turns its report into a result. fio may print
// notes before the JSON: the report starts at the first '{' that opens a
// line.
func runFio(ctx context.Context, m *Measure, file string, size int64, d time.Duration) (result, error) {
	args := fioArgs(m, file, size, d)
	out, err := exec.CommandContext(ctx, "fio", args...).Output()
	if err != nil {
		return result{}, fmt.Errorf("fio %s: %w", strings.Join(args, " "), err)
	}
	if i := bytes.Index(out, []byte("\n{")); i >= 0 && !bytes.HasPrefix(out, []byte("{")) {
		out = out[i+1:]
	}
	var rep fioOut
	if err := json.Unmarshal(out, &rep); err != nil || len(rep.Jobs) != 1 {
		return result{}, fmt.Errorf("fio %s: no report of one job (%v)", strings.Join(args, " "), err)
	}
	j := rep.Jobs[0]
	io := j.Read
	if m.Write {
		io = j.Write
	}
	if j.Error != 0 || io.TotalIO == 0 || io.Runtime == 0 {
		return result{}, fmt.Errorf("fio %s: error %d, %d I/Os in %d ms", strings.Join(args, " "), j.Error, io.TotalIO, io.Runtime)
	}
	secs := float64(io.Runtime) / 1e3
	return result{IOs: io.TotalIO, Bytes: io.IOBytes, Seconds: secs, CPUSec: (j.UsrCPU + j.SysCPU) / 100 * secs}, nil
}

// iperfServer is an iperf3 -s on a loopback port, for the run's length.
type iperfServer struct {
	cmd  *exec.Cmd
	port int
}

func startIperf(ctx context.Context) (*iperfServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.CommandContext(ctx, "iperf3", "-s", "-B", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("iperf3 -s: %w (install iperf3: apt-get install iperf3)", err)
	}
	return &iperfServer{cmd: cmd, port: port}, nil
}

func (s *iperfServer) stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// iperfOut is the part of iperf3 --json read here.
type iperfOut struct {
	Error string `json:"error"`
	End   struct {
		Received struct {
			Bytes   int64   `json:"bytes"`
			Seconds float64 `json:"seconds"`
		} `json:"sum_received"`
		CPU struct {
			Host   float64 `json:"host_total"`
			Remote float64 `json:"remote_total"`
		} `json:"cpu_utilization_percent"`
	} `json:"end"`
}

// runIperf runs one iperf3 client stream of m.Block-byte writes for d
// (whole seconds, at least 1); an I/O is one such write. A server still
// busy with the previous test is retried for up to 10 s.
func runIperf(ctx context.Context, s *iperfServer, m *Measure, d time.Duration) (result, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	args := []string{"-c", "127.0.0.1", "-p", strconv.Itoa(s.port), "-l", strconv.Itoa(m.Block), "-t", strconv.Itoa(secs), "--json"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.CommandContext(ctx, "iperf3", args...).Output()
		var j iperfOut
		err := json.Unmarshal(out, &j)
		if err == nil && j.Error == "" && j.End.Received.Bytes > 0 {
			r := j.End.Received
			cpu := (j.End.CPU.Host + j.End.CPU.Remote) / 100 * r.Seconds
			return result{IOs: r.Bytes / int64(m.Block), Bytes: r.Bytes, Seconds: r.Seconds, CPUSec: cpu}, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return result{}, fmt.Errorf("iperf3 %s: %v %s", strings.Join(args, " "), err, j.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
