//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// iperfResult is what the benchmark takes from `iperf3 --json`: the bytes
// the receiver got and in how long, and both ends' CPU use.
type iperfResult struct {
	Bytes           int64
	Seconds         float64
	SenderCPUSec    float64 // the client's user+system seconds
	ReceiverCPUSec  float64 // the server's
	SenderCPUPct    float64
	ReceiverCPUPct  float64
	Retransmits     int64
	ReceivedBitsSec float64
}

// iperfJSON is the part of iperf3's --json report read here.
type iperfJSON struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			Bytes       int64   `json:"bytes"`
			Seconds     float64 `json:"seconds"`
			Retransmits int64   `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         int64   `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		CPU struct {
			HostTotal   float64 `json:"host_total"`
			RemoteTotal float64 `json:"remote_total"`
		} `json:"cpu_utilization_percent"`
	} `json:"end"`
}

// parseIperf reads an iperf3 --json client report. iperf3 reports CPU as a
// percentage of one CPU over the test: seconds = percent/100 × duration.
func parseIperf(b []byte) (iperfResult, error) {
	var j iperfJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return iperfResult{}, fmt.Errorf("iperf3 --json: %w", err)
	}
	if j.Error != "" {
		return iperfResult{}, fmt.Errorf("iperf3: %s", j.Error)
	}
	e := j.End
	if e.SumReceived.Bytes <= 0 || e.SumReceived.Seconds <= 0 {
		return iperfResult{}, fmt.Errorf("iperf3 --json: no received bytes in the report (end.sum_received)")
	}
	return iperfResult{
		Bytes: e.SumReceived.Bytes, Seconds: e.SumReceived.Seconds,
		SenderCPUPct: e.CPU.HostTotal, ReceiverCPUPct: e.CPU.RemoteTotal,
		SenderCPUSec:    e.CPU.HostTotal / 100 * e.SumSent.Seconds,
		ReceiverCPUSec:  e.CPU.RemoteTotal / 100 * e.SumReceived.Seconds,
		Retransmits:     e.SumSent.Retransmits,
		ReceivedBitsSec: e.SumReceived.BitsPerSecond,
	}, nil
}

// iperfMaxBlock is the largest -l iperf3 accepts for TCP.
const iperfMaxBlock = 1 << 20

// iperfSize is the message size iperf3 is run at for size: the same, up
// to its maximum.
func iperfSize(size int) int { return min(size, iperfMaxBlock) }

// runIperf runs one iperf3 client against the server of n, message size
// iperfSize(size), for d (whole seconds, at least 1), with --zerocopy when
// zc. The server takes a moment after a test before it accepts the next
// ("the server is busy running a test"): that is retried for up to 10 s.
func runIperf(ctx context.Context, n *network, size int, d time.Duration, zc bool) (iperfResult, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := iperfOnce(ctx, n, size, d, zc)
		if err == nil || !strings.Contains(err.Error(), "server is busy") || time.Now().After(deadline) {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func iperfOnce(ctx context.Context, n *network, size int, d time.Duration, zc bool) (iperfResult, error) {
	size = iperfSize(size)
	secs := max(1, int(d.Round(time.Second)/time.Second))
	args := []string{"iperf3", "-c", n.recvIP, "-p", strconv.Itoa(n.iperfPort),
		"-l", strconv.Itoa(size), "-t", strconv.Itoa(secs), "--json"}
	if zc {
		args = append(args, "--zerocopy")
	}
	out, err := n.senderCmd(ctx, args...).Output()
	if err != nil && len(out) == 0 {
		return iperfResult{}, fmt.Errorf("%v: %w", args, err)
	}
	r, perr := parseIperf(out)
	if perr != nil {
		return r, fmt.Errorf("%v: %w (output: %.200s)", args, perr, out)
	}
	return r, nil
}
