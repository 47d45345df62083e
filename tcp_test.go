package zflow_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/operators"
)

// runPair runs a receiving and a sending pipeline at once and returns
// their errors.
func runPair(t *testing.T, recv, send *zflow.Builder, mem memory.Allocator) (recvRows int64, recvErr, sendErr error) {
	t.Helper()
	rp, err := recv.Build()
	if err != nil {
		t.Fatal(err)
	}
	sp, err := send.Build()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		sum, err := rp.Run(context.Background(), zflow.WithAllocator(mem))
		if err == nil {
			recvRows = sum.Op("out").RowsIn
		}
		done <- err
	}()
	_, sendErr = sp.Run(context.Background(), zflow.WithAllocator(mem))
	recvErr = <-done
	return recvRows, recvErr, sendErr
}

var tcpGen = &operators.GenerateConfig{Rows: 200000, Seed: 5, Columns: []operators.GenerateColumn{
	{Name: "a", Type: "int64"}, {Name: "s", Type: "string"},
}}

// TestTCPErrorsBothSides: what fails on one side of the stream fails the
// other with the first side's reason, in both protocols where the protocol
// can say it.
func TestTCPErrorsBothSides(t *testing.T) {
	defer goleak.VerifyNone(t)
	cols := []operators.ColumnDef{{Name: "a", Type: "int64"}, {Name: "s", Type: "string"}}
	wrong := []operators.ColumnDef{{Name: "a", Type: "int64"}, {Name: "s", Type: "int32"}}
	for _, tc := range []struct {
		name, proto string
		recvCols    []operators.ColumnDef
		recvWant    string
		sendWant    string
	}{
		{"zflow schema refused", "zflow", wrong,
			"column 2 of the stream is s utf8, the source declares s int32",
			"refused the stream: tcp_in: 127.0.0.1"},
		{"arrow schema refused", "arrow", wrong,
			"column 2 of the stream is s utf8, the source declares s int32",
			"tcp_out"},
		{"zflow ok", "zflow", cols, "", ""},
		{"arrow ok", "arrow", cols, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			addr := freeAddr(t)
			recv := zflow.New("recv").Source("in", "tcp_in", &operators.TCPInConfig{Listen: addr, Protocol: tc.proto, Schema: tc.recvCols}).
				Sink("out", "discard", nil, "in")
			send := zflow.New("send").Source("g", "generate", tcpGen).
				Sink("net", "tcp_out", &operators.TCPOutConfig{Address: addr, Protocol: tc.proto, Send: "copy"}, "g")
			rows, rerr, serr := runPair(t, recv, send, mem)
			if tc.recvWant == "" && rows != tcpGen.Rows {
				t.Errorf("the receiver's sink took %d rows, want %d", rows, tcpGen.Rows)
			}
			check := func(side string, err error, want string) {
				t.Helper()
				switch {
				case want == "" && err != nil:
					t.Errorf("%s: %v", side, err)
				case want != "" && err == nil:
					t.Errorf("%s succeeded, want an error with %q", side, want)
				case want != "" && !strings.Contains(err.Error(), want):
					t.Errorf("%s: %v\nwant it to say %q", side, err, want)
				}
			}
			check("receiver", rerr, tc.recvWant)
			check("sender", serr, tc.sendWant)
		})
	}
}

// TestTCPLimitDownstream: a receiving pipeline that needs no more rows
// succeeds, and its sender fails saying why.
func TestTCPLimitDownstream(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	addr := freeAddr(t)
	cols := []operators.ColumnDef{{Name: "a", Type: "int64"}, {Name: "s", Type: "string"}}
	recv := zflow.New("recv").Source("in", "tcp_in", &operators.TCPInConfig{Listen: addr, Schema: cols}).
		Transform("lim", "limit", &operators.LimitConfig{Count: 10}, "in").Sink("out", "discard", nil, "lim")
	gen := *tcpGen
	gen.Rows = 1 << 40
	send := zflow.New("send").Source("g", "generate", &gen).
		Sink("net", "tcp_out", &operators.TCPOutConfig{Address: addr}, "g")
	rows, rerr, serr := runPair(t, recv, send, mem)
	if rerr != nil || rows != 10 {
		t.Fatalf("receiver: %d rows, %v", rows, rerr)
	}
	if serr == nil || !strings.Contains(serr.Error(), "needed no more batches after batch") {
		t.Fatalf("sender: %v", serr)
	}
}

// TestTCPCancel: a tcp_in waiting for its sender and a tcp_out retrying
// its connection both end when the run is cancelled, leaving no
// goroutine and no memory.
func TestTCPCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	addr := freeAddr(t)
	cols := []operators.ColumnDef{{Name: "a", Type: "int64"}, {Name: "s", Type: "string"}}
	for name, b := range map[string]*zflow.Builder{
		"tcp_in": zflow.New("recv").Source("in", "tcp_in", &operators.TCPInConfig{Listen: addr, Schema: cols}).
			Sink("out", "discard", nil, "in"),
		"tcp_out": zflow.New("send").Source("g", "generate", tcpGen).
			Sink("net", "tcp_out", &operators.TCPOutConfig{Address: addr}, "g"),
	} {
		p, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err = p.Run(ctx, zflow.WithAllocator(mem)) // a run that did not end would hang the test

		cancel()
		if err == nil {
			t.Fatalf("%s: a cancelled run succeeded", name)
		}
		if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "cancel") {
			t.Errorf("%s: %v, want the cancellation", name, err)
		}
	}
}

// TestTCPBuildErrors: bad parameters fail at compile time, naming the
// parameter and what is wrong.
func TestTCPBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    *zflow.Builder
		want string
	}{
		{"uring_zc", zflow.New("x").Source("g", "generate", tcpGen).
			Sink("n", "tcp_out", &operators.TCPOutConfig{Address: "127.0.0.1:1", Send: "uring_zc"}, "g"),
			"uring_zc is not linked into this binary"},
		{"address", zflow.New("x").Source("g", "generate", tcpGen).
			Sink("n", "tcp_out", &operators.TCPOutConfig{Address: "localhost"}, "g"),
			`want HOST:PORT, got "localhost"`},
		{"send mode", zflow.New("x").Source("g", "generate", tcpGen).
			Sink("n", "tcp_out", &operators.TCPOutConfig{Address: "127.0.0.1:1", Send: "fast"}, "g"),
			`fast`},
		{"listen", zflow.New("x").Source("in", "tcp_in", &operators.TCPInConfig{Listen: "7070", Schema: []operators.ColumnDef{{Name: "a", Type: "int64"}}}).
			Sink("out", "discard", nil, "in"),
			`want HOST:PORT, got "7070"`},
		{"credit", zflow.New("x").Source("in", "tcp_in", &operators.TCPInConfig{Listen: "127.0.0.1:1", Credit: -1, Schema: []operators.ColumnDef{{Name: "a", Type: "int64"}}}).
			Sink("out", "discard", nil, "in"),
			`want 1 to 1048576, got -1`},
		{"no sender at compile time", zflow.New("x").Source("in", "tcp_in", &operators.TCPInConfig{Listen: freeAddr(t), AcceptTimeout: 100 * time.Millisecond}).
			Sink("out", "discard", nil, "in"),
			`not given, so the stream's schema was to be read at compile time: tcp_in: stream: no sender connected to`},
	} {
		_, err := tc.b.Build()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %q", tc.name, err, tc.want)
		}
	}
}
