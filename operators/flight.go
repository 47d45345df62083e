package operators

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/zflowdev/zflow/engine"
)

// Arrow Flight: a sink that serves a run's output to whoever pulls it
// (DoGet, as DuckDB, DataFusion, pyarrow or Spark clients do), and a
// source that pulls from any Flight server. Flight moves Arrow IPC
// messages inside gRPC messages (FlightData), so each batch is serialised
// into the gRPC message on the way out and its body copied out of it on
// the way in: both are copies, counted on the copy ledger.

// FlightOutConfig configures the flight sink.
type FlightOutConfig struct {
	Listen        string        `zflow:"listen" required:"true" doc:"HOST:PORT the Flight server listens on (port 0 picks one, logged)" example:"127.0.0.1:8815"`
	Ticket        string        `zflow:"ticket" doc:"the ticket a client passes to DoGet for this output, and the path of its flight in ListFlights and GetFlightInfo (default: the sink's id)"`
	AcceptTimeout time.Duration `zflow:"accept_timeout" doc:"how long the run waits for a client to call DoGet before it fails (default 60s)"`
}

// FlightInConfig configures the flight source.
type FlightInConfig struct {
	Address  string        `zflow:"address" required:"true" doc:"HOST:PORT of the Flight server" example:"127.0.0.1:8815"`
	Ticket   string        `zflow:"ticket" required:"true" doc:"the ticket to DoGet (a zflow flight sink's is its ticket: parameter, by default its id)"`
	Schema   []ColumnDef   `zflow:"schema" doc:"the columns the stream must have (checked when it starts). Without it the source calls DoGet at compile time and takes the stream's schema, so compiling (zflow plan too) needs the server up"`
	Timeout  time.Duration `zflow:"timeout" doc:"how long to keep trying to reach the server and start the stream (default 60s)"`
	Validate string        `zflow:"validate" enum:"full,basic,none" doc:"check each batch received: full checks every offset (O(rows)), basic only buffer sizes, none trusts the server"`
}

// FlightOutSpec is the spec of the flight sink.
func FlightOutSpec() engine.Spec {
	return engine.Spec{
		Name:    "flight",
		Kind:    engine.KindSink,
		Summary: "serves the batches over Arrow Flight (DoGet) for another engine to pull",
		Doc: "Starts a Flight server when the run starts. One client's DoGet with the ticket receives the stream, " +
			"batches as the pipeline makes them (gRPC flow control holds the run back when the client reads slowly); " +
			"ListFlights and GetFlightInfo describe it (schema, ticket, endpoint). The run fails when no client calls " +
			"DoGet within accept_timeout, when the client goes away before the end, or when a second client asks for a " +
			"stream already taken; it ends when the client has received the last batch. Each batch is serialised into " +
			"gRPC messages (\"flight send (serialize)\" on the copy ledger).",
		Example: `type: flight
inputs: [trades]
listen: 127.0.0.1:8815
ticket: trades`,
		MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &FlightOutConfig{AcceptTimeout: 60 * time.Second} },
		Build:     buildFlightOut,
	}
}

// FlightInSpec is the spec of the flight source.
func FlightInSpec() engine.Spec {
	return engine.Spec{
		Name:    "flight",
		Kind:    engine.KindSource,
		Summary: "pulls batches from an Arrow Flight server (DoGet)",
		Doc: "Calls DoGet with the ticket on the server and emits the batches of the stream. A stream that breaks " +
			"fails the run, naming the batch it broke after; a server's error (a ticket it does not know) fails it " +
			"with the server's message. Each batch's body is copied out of its gRPC message (\"flight receive\" on " +
			"the copy ledger).",
		Example: `type: flight
address: 127.0.0.1:8815
ticket: trades`,
		NewConfig: func() any { return &FlightInConfig{Timeout: 60 * time.Second, Validate: "full"} },
		Build:     buildFlightIn,
	}
}

func init() {
	engine.Register(FlightOutSpec())
	engine.Register(FlightInSpec())
}

type flightOutFactory struct {
	cfg    FlightOutConfig
	schema *arrow.Schema
}

func buildFlightOut(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*FlightOutConfig)
	var errs []error
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		errs = append(errs, engine.Errf("listen", "want HOST:PORT, got %q: %v", cfg.Listen, err))
	}
	if cfg.AcceptTimeout <= 0 {
		errs = append(errs, engine.Errf("accept_timeout", "must be positive, got %v", cfg.AcceptTimeout))
	}
	if cfg.Ticket == "" {
		cfg.Ticket = bc.Node
	}
	schema, err := checkSinkInput(bc)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &flightOutFactory{cfg: cfg, schema: schema}, nil
}

func (f *flightOutFactory) Schema() *arrow.Schema { return nil }

func (f *flightOutFactory) Describe() string {
	return fmt.Sprintf("Flight server on %s, ticket %q, one DoGet within %v", f.cfg.Listen, f.cfg.Ticket, f.cfg.AcceptTimeout)
}

func (f *flightOutFactory) New(ic *engine.InstanceContext) (any, error) {
	return &flightOutSink{f: f, ic: ic}, nil
}

// flightOutSink is the flight sink: a Flight server whose DoGet streams
// what Write hands it.
type flightOutSink struct {
	flight.BaseFlightServer
	f   *flightOutFactory
	ic  *engine.InstanceContext
	srv flight.Server

	batches chan arrow.RecordBatch // to the DoGet; closed at the end
	taken   chan struct{}          // closed when a client took the stream
	ended   chan error             // the DoGet's outcome
	mu      sync.Mutex
	claimed bool
	closed  bool
	sent    int64 // bytes serialised
	served  sync.WaitGroup
}

// start serves on the listen address.
func (s *flightOutSink) start() error {
	if s.srv != nil {
		return nil
	}
	srv := flight.NewServerWithMiddleware(nil)
	if err := srv.Init(s.f.cfg.Listen); err != nil {
		return fmt.Errorf("flight: listen on %s: %w", s.f.cfg.Listen, err)
	}
	srv.RegisterFlightService(s)
	s.srv = srv
	s.batches = make(chan arrow.RecordBatch, 4)
	s.taken = make(chan struct{})
	s.ended = make(chan error, 1)
	s.served.Add(1)
	go func() {
		defer s.served.Done()
		_ = srv.Serve()
	}()
	if s.ic.Logger != nil {
		s.ic.Logger.Info("flight serving", "address", srv.Addr().String(), "ticket", s.f.cfg.Ticket)
	}
	return nil
}

func (s *flightOutSink) info() (*flight.FlightInfo, error) {
	return &flight.FlightInfo{
		Schema:           flight.SerializeSchema(s.f.schema, memory.DefaultAllocator),
		FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{s.f.cfg.Ticket}},
		Endpoint:         []*flight.FlightEndpoint{{Ticket: &flight.Ticket{Ticket: []byte(s.f.cfg.Ticket)}}},
		TotalRecords:     -1, TotalBytes: -1,
	}, nil
}

// ListFlights lists the one flight (flight.FlightServer).
func (s *flightOutSink) ListFlights(_ *flight.Criteria, fs flight.FlightService_ListFlightsServer) error {
	fi, _ := s.info()
	return fs.Send(fi)
}

// GetFlightInfo describes the flight whose path is the ticket.
func (s *flightOutSink) GetFlightInfo(_ context.Context, d *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	if d == nil || len(d.Path) != 1 || d.Path[0] != s.f.cfg.Ticket {
		return nil, status.Errorf(codes.NotFound, "zflow flight sink %s serves the path [%q] only", s.ic.Node, s.f.cfg.Ticket)
	}
	return s.info()
}

// GetSchema is the flight's schema.
func (s *flightOutSink) GetSchema(ctx context.Context, d *flight.FlightDescriptor) (*flight.SchemaResult, error) {
	if _, err := s.GetFlightInfo(ctx, d); err != nil {
		return nil, err
	}
	return &flight.SchemaResult{Schema: flight.SerializeSchema(s.f.schema, memory.DefaultAllocator)}, nil
}

// DoGet streams the run's batches to the first client with the ticket.
func (s *flightOutSink) DoGet(t *flight.Ticket, fs flight.FlightService_DoGetServer) error {
	if string(t.GetTicket()) != s.f.cfg.Ticket {
		return status.Errorf(codes.NotFound, "zflow flight sink %s: unknown ticket %q (it serves %q)", s.ic.Node, t.GetTicket(), s.f.cfg.Ticket)
	}
	s.mu.Lock()
	if s.claimed {
		s.mu.Unlock()
		return status.Errorf(codes.FailedPrecondition, "zflow flight sink %s: the stream of ticket %q was taken by another client", s.ic.Node, s.f.cfg.Ticket)
	}
	s.claimed = true
	s.mu.Unlock()
	close(s.taken)
	err := s.stream(fs)
	s.ended <- err
	return err
}

func (s *flightOutSink) stream(fs flight.FlightService_DoGetServer) error {
	w := flight.NewRecordWriter(fs, ipc.WithSchema(s.f.schema), ipc.WithAllocator(s.ic.Alloc))
	defer w.Close()
	for {
		select {
		case b, ok := <-s.batches:
			if !ok {
				return nil
			}
			err := w.Write(b)
			s.mu.Lock()
			s.sent += engine.BatchBytes(b)
			s.mu.Unlock()
			b.Release()
			if err != nil {
				return fmt.Errorf("flight: send to the client: %w", err)
			}
		case <-fs.Context().Done():
			return fmt.Errorf("flight: the client went away: %w", context.Cause(fs.Context()))
		}
	}
}

// waitClient waits for a client to take the stream, or says why none did.
func (s *flightOutSink) waitClient(ctx context.Context) error {
	select {
	case <-s.taken:
		return nil
	default:
	}
	t := time.NewTimer(s.f.cfg.AcceptTimeout)
	defer t.Stop()
	select {
	case <-s.taken:
		return nil
	case <-t.C:
		return fmt.Errorf("flight: no client called DoGet for ticket %q on %s within %v", s.f.cfg.Ticket, s.srv.Addr(), s.f.cfg.AcceptTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *flightOutSink) Write(ctx context.Context, _ int, in arrow.RecordBatch) error {
	if err := s.start(); err != nil {
		return err
	}
	if err := s.waitClient(ctx); err != nil {
		return err
	}
	in.Retain()
	select {
	case s.batches <- in:
		return nil
	case err := <-s.ended:
		in.Release()
		s.ended <- err
		if err == nil {
			err = errors.New("the stream ended early")
		}
		return err
	case <-ctx.Done():
		in.Release()
		return ctx.Err()
	}
}

// Close ends the stream and waits until the client has it all.
func (s *flightOutSink) Close(ctx context.Context) error {
	if err := s.start(); err != nil {
		return err
	}
	if err := s.waitClient(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.batches)
	var err error
	select {
	case err = <-s.ended:
		s.ended <- err
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.mu.Lock()
	sent := s.sent
	s.mu.Unlock()
	s.ic.Ledger.Copied("flight send (serialize)", sent)
	return err
}

func (s *flightOutSink) Commit() error { return nil }

func (s *flightOutSink) Abort() {}

// Release stops the server: a client still reading sees the stream end
// with an error unless the run finished it.
func (s *flightOutSink) Release() {
	if s.srv == nil {
		return
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if !closed {
		close(s.batches)
	}
	for b := range s.batches {
		b.Release()
	}
	s.srv.Shutdown()
	s.served.Wait()
}

type flightInFactory struct {
	cfg    FlightInConfig
	schema *arrow.Schema
	mu     sync.Mutex
	early  *flightStream // opened at compile time (no schema:), for the first run
}

// flightStream is a DoGet in progress.
type flightStream struct {
	client flight.Client
	rdr    *flight.Reader
	cancel context.CancelFunc
}

func (st *flightStream) close() {
	if st.rdr != nil {
		st.rdr.Release()
	}
	st.cancel()
	st.client.Close()
}

func buildFlightIn(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*FlightInConfig)
	var errs []error
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		errs = append(errs, engine.Errf("address", "want HOST:PORT, got %q: %v", cfg.Address, err))
	}
	if cfg.Timeout <= 0 {
		errs = append(errs, engine.Errf("timeout", "must be positive, got %v", cfg.Timeout))
	}
	switch cfg.Validate {
	case "full", "basic", "none":
	default:
		errs = append(errs, engine.Errf("validate", "want full, basic or none, got %q", cfg.Validate))
	}
	f := &flightInFactory{cfg: cfg}
	var err error
	f.early, f.schema, err = streamSchema(cfg.Schema, errs, func() (*flightStream, *arrow.Schema, error) {
		st, err := f.open(context.Background(), memory.NewGoAllocator())
		if err != nil {
			return nil, nil, err
		}
		return st, st.rdr.Schema(), nil
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// open calls DoGet, retrying while the server is not up yet, and reads
// the stream's schema.
func (f *flightInFactory) open(ctx context.Context, mem memory.Allocator) (*flightStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	deadline := time.Now().Add(f.cfg.Timeout)
	for {
		st, err := f.try(ctx, mem)
		if err == nil {
			st.cancel = cancel
			return st, nil
		}
		if status.Code(errors.Unwrap(err)) != codes.Unavailable || time.Now().After(deadline) {
			cancel()
			return nil, err
		}
		select {
		case <-ctx.Done():
			cancel()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (f *flightInFactory) try(ctx context.Context, mem memory.Allocator) (*flightStream, error) {
	client, err := flight.NewClientWithMiddleware(f.cfg.Address, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("flight: %s: %w", f.cfg.Address, err)
	}
	stream, err := client.DoGet(ctx, &flight.Ticket{Ticket: []byte(f.cfg.Ticket)})
	if err == nil {
		var rdr *flight.Reader
		if rdr, err = flight.NewRecordReader(stream, ipc.WithAllocator(mem)); err == nil {
			return &flightStream{client: client, rdr: rdr}, nil
		}
	}
	client.Close()
	return nil, fmt.Errorf("flight: DoGet %q from %s: %w", f.cfg.Ticket, f.cfg.Address, err)
}

func (f *flightInFactory) Schema() *arrow.Schema { return f.schema }

func (f *flightInFactory) Describe() string {
	how := "declared columns"
	if len(f.cfg.Schema) == 0 {
		how = "the stream's schema, read at compile time"
	}
	return fmt.Sprintf("DoGet %q from %s (%d columns, %s)", f.cfg.Ticket, f.cfg.Address, f.schema.NumFields(), how)
}

func (f *flightInFactory) New(ic *engine.InstanceContext) (any, error) {
	f.mu.Lock()
	early := f.early
	f.early = nil
	f.mu.Unlock()
	return &flightInSource{f: f, ic: ic, st: early}, nil
}

type flightInSource struct {
	f  *flightInFactory
	ic *engine.InstanceContext
	st *flightStream
}

func (s *flightInSource) Run(ctx context.Context, out engine.Emitter) (err error) {
	if s.st == nil {
		if s.st, err = s.f.open(ctx, s.ic.Alloc); err != nil {
			return err
		}
	}
	defer func() {
		s.st.close()
		s.st = nil
	}()
	if err := checkStreamColumns(s.f.schema, s.st.rdr.Schema()); err != nil {
		return fmt.Errorf("flight: %s %q: %w", s.f.cfg.Address, s.f.cfg.Ticket, err)
	}
	var n, bytes int64
	defer func() { s.ic.Ledger.Copied("flight receive (copy out of gRPC messages)", bytes) }()
	for s.st.rdr.Next() {
		rec := s.st.rdr.RecordBatch()
		n++
		if verr := validateBatch(s.f.cfg.Validate, rec); verr != nil {
			return fmt.Errorf("flight: batch %d from %s is malformed: %w", n, s.f.cfg.Address, verr)
		}
		b, err := conformBatch(s.f.schema, rec)
		if err != nil {
			return fmt.Errorf("flight: batch %d: %w", n, err)
		}
		bytes += engine.BatchBytes(b)
		if err := out.Emit(b); err != nil {
			if errors.Is(err, engine.ErrStop) {
				return nil
			}
			return err
		}
	}
	if err := s.st.rdr.Err(); err != nil && err != io.EOF {
		return fmt.Errorf("flight: %s %q: the stream broke after batch %d: %w", s.f.cfg.Address, s.f.cfg.Ticket, n, err)
	}
	return nil
}

// Release closes a stream opened at compile time that no run used.
func (f *flightInFactory) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.early != nil {
		f.early.close()
		f.early = nil
	}
}
