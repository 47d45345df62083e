package zflow_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/operators"
)

var flightGen = &operators.GenerateConfig{Rows: 300000, Seed: 11, Columns: []operators.GenerateColumn{
	{Name: "a", Type: "int64"}, {Name: "s", Type: "string"}, {Name: "x", Type: "float64"},
}}

// TestFlightRoundTrip: one run serves generated rows through a flight
// sink, another pulls them through a flight source (the schema read at
// compile time) and writes CSV: the file is byte for byte what the
// generator writes to CSV directly. No allocation or goroutine outlives
// the runs.
func TestFlightRoundTrip(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	addr := freeAddr(t)
	direct := filepath.Join(dir, "direct.csv")
	ref, err := zflow.New("ref").Source("g", "generate", flightGen).
		Sink("out", "csv", &operators.CSVSinkConfig{Path: direct}, "g").Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ref.Run(context.Background()); err != nil {
		t.Fatal(err)
	}

	serve, err := zflow.New("serve").Source("g", "generate", flightGen).
		Sink("out", "flight", &operators.FlightOutConfig{Listen: addr, Ticket: "trades"}, "g").Build()
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		_, err := serve.Run(context.Background(), zflow.WithAllocator(mem))
		served <- err
	}()
	pulled := filepath.Join(dir, "pulled.csv")
	pull, err := zflow.New("pull").Source("in", "flight", &operators.FlightInConfig{Address: addr, Ticket: "trades"}).
		Sink("out", "csv", &operators.CSVSinkConfig{Path: pulled}, "in").Build()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := pull.Run(context.Background(), zflow.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if got := sum.Op("in").RowsOut; got != flightGen.Rows {
		t.Fatalf("pulled %d rows, want %d", got, flightGen.Rows)
	}
	a, _ := os.ReadFile(direct)
	b, _ := os.ReadFile(pulled)
	if string(a) != string(b) || len(a) == 0 {
		t.Fatalf("the pulled CSV (%d bytes) is not the direct one (%d bytes)", len(b), len(a))
	}
}

// TestFlightClientSeesFlight: a plain arrow-go Flight client lists the
// sink's flight, reads its schema, is refused an unknown ticket with the
// reason, and reads every row with the right one.
func TestFlightClientSeesFlight(t *testing.T) {
	defer goleak.VerifyNone(t)
	addr := freeAddr(t)
	serve, err := zflow.New("serve").Source("g", "generate", flightGen).
		Sink("out", "flight", &operators.FlightOutConfig{Listen: addr}, "g").Build()
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		_, err := serve.Run(context.Background())
		served <- err
	}()
	var client flight.Client
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		client, err = flight.NewClientWithMiddleware(addr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ls, err := client.ListFlights(ctx, &flight.Criteria{})
		if err == nil {
			fi, err := ls.Recv()
			if err == nil {
				if got := fi.GetFlightDescriptor().GetPath(); len(got) != 1 || got[0] != "out" {
					t.Fatalf("flight path %v, want [out] (the sink's id)", got)
				}
				break
			}
		}
		client.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no flight listed within 10s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer client.Close()
	bad, err := client.DoGet(ctx, &flight.Ticket{Ticket: []byte("nope")})
	if err == nil {
		_, err = bad.Recv()
	}
	if err == nil || !strings.Contains(err.Error(), `unknown ticket "nope"`) {
		t.Fatalf("an unknown ticket: %v", err)
	}
	stream, err := client.DoGet(ctx, &flight.Ticket{Ticket: []byte("out")})
	if err != nil {
		t.Fatal(err)
	}
	rdr, err := flight.NewRecordReader(stream)
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for rdr.Next() {
		rows += rdr.RecordBatch().NumRows()
	}
	rdr.Release()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if rows != flightGen.Rows || rdr.Schema().NumFields() != 3 {
		t.Fatalf("read %d rows of %d columns, want %d of 3", rows, rdr.Schema().NumFields(), flightGen.Rows)
	}
}

// TestFlightNoClient: a flight sink nobody pulls from fails the run after
// accept_timeout, saying so.
func TestFlightNoClient(t *testing.T) {
	defer goleak.VerifyNone(t)
	serve, err := zflow.New("serve").Source("g", "generate", flightGen).
		Sink("out", "flight", &operators.FlightOutConfig{Listen: freeAddr(t), AcceptTimeout: 300 * time.Millisecond}, "g").Build()
	if err != nil {
		t.Fatal(err)
	}
	_, err = serve.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `no client called DoGet for ticket "out"`) {
		t.Fatalf("got %v", err)
	}
}
