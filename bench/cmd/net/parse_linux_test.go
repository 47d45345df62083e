//go:build linux

package main

import (
	"math"
	"strings"
	"testing"
)

func TestPercentile(t *testing.T) {
	for _, tc := range []struct {
		v    []float64
		p    float64
		want float64
	}{
		{nil, 50, 0},
		{[]float64{7}, 99, 7},
		{[]float64{3, 1, 2}, 50, 2},
		{[]float64{4, 3, 2, 1}, 50, 2}, // nearest rank: ceil(0.5·4) = 2nd
		{[]float64{4, 3, 2, 1}, 75, 3},
		{[]float64{4, 3, 2, 1}, 100, 4},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90, 9},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 10, 1},
	} {
		if got := percentile(tc.v, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.v, tc.p, got, tc.want)
		}
	}
}

// iperfReport is the shape of iperf3 3.12's --json client report, cut
// down to the fields read and a few around them.
const iperfReport = `{
	"start": {"test_start": {"protocol": "TCP", "blksize": 65536, "duration": 2}},
	"intervals": [],
	"end": {
		"streams": [],
		"sum_sent": {"start": 0, "end": 2.000053, "seconds": 2.000053, "bytes": 9000000000, "bits_per_second": 35999046022.8, "retransmits": 3, "sender": true},
		"sum_received": {"start": 0, "end": 2.000312, "seconds": 2.000312, "bytes": 8990000000, "bits_per_second": 35954391045.1, "sender": true},
		"cpu_utilization_percent": {"host_total": 80.5, "host_user": 1.2, "host_system": 79.3, "remote_total": 40.25, "remote_user": 0.5, "remote_system": 39.75},
		"sender_tcp_congestion": "cubic",
		"receiver_tcp_congestion": "cubic"
	}
}`

func TestParseIperf(t *testing.T) {
	r, err := parseIperf([]byte(iperfReport))
	if err != nil {
		t.Fatal(err)
	}
	if r.Bytes != 8990000000 || r.Seconds != 2.000312 || r.Retransmits != 3 {
		t.Fatalf("got %+v", r)
	}
	if math.Abs(r.SenderCPUSec-0.805*2.000053) > 1e-9 || math.Abs(r.ReceiverCPUSec-0.4025*2.000312) > 1e-9 {
		t.Fatalf("CPU seconds: got %v and %v", r.SenderCPUSec, r.ReceiverCPUSec)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"start": {}, "intervals": [], "end": {}, "error": "unable to connect to server: Connection refused"}`, "unable to connect"},
		{`{"end": {}}`, "no received bytes"},
		{`iperf3: parameter error - block size too large`, "iperf3 --json"},
	} {
		if _, err := parseIperf([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseIperf(%.40q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

func TestParseSummary(t *testing.T) {
	r, err := parseSummary([]byte(`{"pipeline": "send", "elapsed_ns": 2000000000, "operators": [
		{"id": "f", "type": "arrow", "bytes_in": 0, "batches_in": 0},
		{"id": "t", "type": "tcp_out", "bytes_in": 640001224, "batches_in": 306}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.BodyBytes != 640001224 || r.Batches != 306 || r.Seconds != 2 {
		t.Fatalf("got %+v", r)
	}
	if _, err := parseSummary([]byte(`{"elapsed_ns": 5, "operators": [{"type": "discard"}]}`)); err == nil {
		t.Fatal("a summary without tcp_out parsed")
	}
}

func TestHasListener(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1451 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1451 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
`
	for port, want := range map[int]bool{0x1451: true, 0x9C40: false, 80: false} {
		if got := hasListener(table, port); got != want {
			t.Errorf("hasListener(port %d) = %v, want %v", port, got, want)
		}
	}
}
