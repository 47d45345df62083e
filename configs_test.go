package zflow_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/nvmeof/target"
	"github.com/zflowdev/zflow/operators"
	"github.com/zflowdev/zflow/operators/stateful"
	"github.com/zflowdev/zflow/pipelines"
)

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serveNVMe starts an NVMe/TCP target with one RAM namespace on loopback
// for the nvme source and sink; stop stops it.
func serveNVMe(t *testing.T) (addr, nqn string, stop func()) {
	t.Helper()
	nqn = "nqn.2024-01.dev.zflow:configs"
	ns, err := target.NewRAM(16<<20, 12)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := target.New(target.Config{SubNQN: nqn, Namespaces: []target.Namespace{ns}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tg.Serve(ln) }()
	return ln.Addr().String(), nqn, func() {
		tg.Close()
		<-done
	}
}

// TestEveryConfigStruct builds every registered operator from a Go struct
// literal that sets only its required parameters, and checks that
//
//   - the literal, completed by the engine (engine.CompleteConfig), is the
//     config a pipeline file with the same keys decodes to: the same
//     defaults on both paths;
//   - a pipeline built with zflow.New around it compiles and runs on a
//     checked allocator: sinks first (their files feed the sources of the
//     same format), then sources, then transforms.
//
// A new operator without a row in the table fails the test.
func TestEveryConfigStruct(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	gen := &operators.GenerateConfig{Rows: 5, Columns: []operators.GenerateColumn{{Name: "a", Type: "int64"}, {Name: "s", Type: "string"}}}
	outAddr, inAddr := freeAddr(t), freeAddr(t)
	rdmaOut, rdmaIn := freeAddr(t), freeAddr(t)
	flightOut, flightIn := freeAddr(t), freeAddr(t)
	cols := []operators.ColumnDef{{Name: "a", Type: "int64"}, {Name: "s", Type: "string"}}
	shm, err := os.MkdirTemp("/dev/shm", "zflow-configs-")
	if err != nil {
		shm = t.TempDir() // any file system does for a test segment
	}
	defer os.RemoveAll(shm)
	seg := filepath.Join(shm, "seg")
	nvmeAddr, nvmeNQN, stopNVMe := serveNVMe(t)
	defer stopNVMe()
	nvmeCfg := operators.NVMeConfig{Address: nvmeAddr, SubNQN: nvmeNQN}
	nvmeYAML := "address: " + nvmeAddr + ", subnqn: " + nvmeNQN
	// The network and shared-memory operators run against a peer pipeline.
	peers := map[string]*zflow.Builder{
		"tcp_out":  zflow.New("peer").Source("in", "tcp_in", &operators.TCPInConfig{Listen: outAddr, Schema: cols}).Sink("out", "discard", nil, "in"),
		"tcp_in":   zflow.New("peer").Source("g", "generate", gen).Sink("out", "tcp_out", &operators.TCPOutConfig{Address: inAddr}, "g"),
		"rdma_out": zflow.New("peer").Source("in", "rdma_in", &operators.RDMAInConfig{Listen: rdmaOut, Schema: cols}).Sink("out", "discard", nil, "in"),
		"rdma_in":  zflow.New("peer").Source("g", "generate", gen).Sink("out", "rdma_out", &operators.RDMAOutConfig{Address: rdmaIn}, "g"),
		"shm_out":  zflow.New("peer").Source("in", "shm_in", &operators.ShmInConfig{Path: seg, Channel: "out", Schema: cols, Wait: time.Minute}).Sink("out", "discard", nil, "in"),
		"shm_in":   zflow.New("peer").Source("g", "generate", gen).Sink("out", "shm_out", &operators.ShmOutConfig{Path: seg, Channel: "in"}, "g"),
		// The flight sink's ticket is its id, n.
		"sink/flight":   zflow.New("peer").Source("in", "flight", &operators.FlightInConfig{Address: flightOut, Ticket: "n", Schema: cols}).Sink("out", "discard", nil, "in"),
		"source/flight": zflow.New("peer").Source("g", "generate", gen).Sink("out", "flight", &operators.FlightOutConfig{Listen: flightIn, Ticket: "t"}, "g"),
	}
	const genYAML = "{type: generate, rows: 5, columns: [{name: a, type: int64}, {name: s, type: string}]}"
	if err := os.WriteFile(file("in.csv"), []byte("a,s\n1,x\n2,y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file("in.ndjson"), []byte(`{"a":1,"s":"x"}`+"\n"+`{"a":2,"s":"y"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file("in.bin"), []byte("0123456789abcdefghij"), 0o644); err != nil {
		t.Fatal(err)
	}
	// lookup_join's table: symbols keyed by s (strings, as the generated s).
	lookupTable := file("table.parquet")
	writeLookupTable(t, lookupTable)
	// The raw sink writes a binary column: its input is a raw source.
	rawIn := &operators.RawSourceConfig{Path: file("in.bin"), RecordSize: 4}
	const rawInYAML = "{type: raw, path: %s, record_size: 4}"
	cases := []struct {
		kind engine.Kind
		name string
		cfg  any    // only the required parameters
		yaml string // the same keys in a pipeline file
		rows int64  // rows the sink (or the discard after the node) gets
	}{
		{engine.KindSink, "arrow", &operators.ArrowSinkConfig{Path: file("out.arrow")}, "path: " + file("out.arrow"), 5},
		{engine.KindSink, "csv", &operators.CSVSinkConfig{Path: file("out.csv")}, "path: " + file("out.csv"), 5},
		{engine.KindSink, "discard", &operators.DiscardConfig{}, "", 5},
		{engine.KindSink, "ndjson", &operators.NDJSONSinkConfig{Path: file("out.ndjson")}, "path: " + file("out.ndjson"), 5},
		{engine.KindSink, "parquet", &operators.ParquetSinkConfig{Path: file("out.parquet")}, "path: " + file("out.parquet"), 5},
		{engine.KindSink, "raw", &operators.RawSinkConfig{Path: file("out.bin")}, "path: " + file("out.bin"), 5},
		{engine.KindSource, "raw", &operators.RawSourceConfig{Path: file("in.bin"), RecordSize: 4}, "path: " + file("in.bin") + ", record_size: 4", 5},
		{engine.KindSink, "stdout", &operators.StdoutConfig{}, "", 5},
		{engine.KindSource, "arrow", &operators.ArrowSourceConfig{Path: file("out.arrow")}, "path: " + file("out.arrow"), 5},
		{engine.KindSource, "csv", &operators.CSVSourceConfig{Path: file("in.csv")}, "path: " + file("in.csv"), 2},
		{engine.KindSource, "generate", gen, "rows: 5, columns: [{name: a, type: int64}, {name: s, type: string}]", 5},
		{engine.KindSource, "ndjson", &operators.NDJSONSourceConfig{Path: file("in.ndjson")}, "path: " + file("in.ndjson"), 2},
		{engine.KindSource, "parquet", &operators.ParquetSourceConfig{Path: file("out.parquet")}, "path: " + file("out.parquet"), 5},
		{engine.KindTransform, "aggregate", &stateful.AggregateConfig{GroupBy: []string{"s"}}, "group_by: [s]", 5},
		{engine.KindTransform, "filter", &operators.FilterConfig{Where: "a IS NOT NULL OR a IS NULL"}, `where: "a IS NOT NULL OR a IS NULL"`, 5},
		{engine.KindTransform, "limit", &operators.LimitConfig{Count: 2}, "count: 2", 2},
		{engine.KindTransform, "dedupe", &stateful.DedupeConfig{By: []string{"a", "s"}}, "by: [a, s]", 5},
		{engine.KindTransform, "distinct", &stateful.DistinctConfig{By: []string{"a", "s"}}, "by: [a, s]", 5},
		{engine.KindTransform, "window", &stateful.WindowConfig{Time: "to_timestamp(a)", Size: 8760 * time.Hour, Aggregates: engine.OrderedMap{{Key: "n", Value: "count(*)"}}}, `time: "to_timestamp(a)", size: 8760h, aggregates: {n: "count(*)"}`, 1},
		{engine.KindTransform, "lookup_join", &stateful.LookupJoinConfig{Table: lookupTable, On: []string{"s"}}, "table: " + lookupTable + ", on: [s]", 5},
		{engine.KindTransform, "repartition", &stateful.RepartitionConfig{By: []string{"s"}}, "by: [s]", 5},
		{engine.KindTransform, "project", &operators.ProjectConfig{}, "", 5},
		{engine.KindTransform, "union", &operators.UnionConfig{}, "", 10},
		{engine.KindTransform, "sort", &stateful.SortConfig{By: []string{"s DESC", "a"}}, `by: ["s DESC", a]`, 5},
		{engine.KindTransform, "top_k", &stateful.TopKConfig{By: []string{"a DESC"}, K: 3}, `by: ["a DESC"], k: 3`, 3},
		{engine.KindTransform, "join", &stateful.JoinConfig{On: []string{"a", "s"}}, "on: [a, s]", 5},
		{engine.KindSink, "tcp_out", &operators.TCPOutConfig{Address: outAddr}, "address: " + outAddr, 5},
		{engine.KindSource, "tcp_in", &operators.TCPInConfig{Listen: inAddr, Schema: cols}, "listen: " + inAddr + ", schema: [{name: a, type: int64}, {name: s, type: string}]", 5},
		{engine.KindSink, "rdma_out", &operators.RDMAOutConfig{Address: rdmaOut}, "address: " + rdmaOut, 5},
		{engine.KindSource, "rdma_in", &operators.RDMAInConfig{Listen: rdmaIn, Schema: cols}, "listen: " + rdmaIn + ", schema: [{name: a, type: int64}, {name: s, type: string}]", 5},
		{engine.KindSink, "shm_out", &operators.ShmOutConfig{Path: seg, Channel: "out"}, "path: " + seg + ", channel: out", 5},
		{engine.KindSource, "shm_in", &operators.ShmInConfig{Path: seg, Channel: "in", Schema: cols}, "path: " + seg + ", channel: in, schema: [{name: a, type: int64}, {name: s, type: string}]", 5},
		{engine.KindSink, "flight", &operators.FlightOutConfig{Listen: flightOut}, "listen: " + flightOut, 5},
		{engine.KindSource, "flight", &operators.FlightInConfig{Address: flightIn, Ticket: "t", Schema: cols}, "address: " + flightIn + ", ticket: t, schema: [{name: a, type: int64}, {name: s, type: string}]", 5},
		{engine.KindSink, "nvme", &operators.NVMeSinkConfig{NVMeConfig: nvmeCfg}, nvmeYAML, 5},
		{engine.KindSource, "nvme", &operators.NVMeSourceConfig{NVMeConfig: nvmeCfg}, nvmeYAML, 5},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.kind.String()+"/"+c.name] = true
	}
	for _, s := range engine.DefaultRegistry.Specs() {
		if strings.HasPrefix(s.Name, "test_") { // registered by other tests of this package
			continue
		}
		if !covered[s.Kind.String()+"/"+s.Name] {
			t.Errorf("%s %s has no row in this table", s.Kind, s.Name)
		}
	}
	for _, c := range cases {
		t.Run(c.kind.String()+"/"+c.name, func(t *testing.T) {
			spec, err := engine.DefaultRegistry.Lookup(c.kind, c.name)
			if err != nil {
				t.Fatal(err)
			}
			// The same defaults as YAML.
			node := "{type: " + c.name
			if c.yaml != "" {
				node += ", " + c.yaml
			}
			node += "}"
			var src string
			switch c.kind {
			case engine.KindSource:
				src = "sources:\n  n: " + node + "\nsinks:\n  out: {type: discard, inputs: [n]}\n"
			case engine.KindTransform:
				inputs := "g"
				src = "sources:\n  g: " + genYAML + "\n"
				if c.name == "union" || c.name == "join" {
					src, inputs = src+"  h: "+genYAML+"\n", "g, h"
				}
				src += "operators:\n  n: " + strings.TrimSuffix(node, "}") + ", inputs: [" + inputs + "]}\nsinks:\n  out: {type: discard, inputs: [n]}\n"
			case engine.KindSink:
				from := genYAML
				if c.name == "raw" {
					from = fmt.Sprintf(rawInYAML, file("in.bin"))
				}
				src = "sources:\n  g: " + from + "\nsinks:\n  n: " + strings.TrimSuffix(node, "}") + ", inputs: [g]}\n"
			}
			pf, err := pipelines.Parse([]byte("version: 1\nname: twin\n"+src), "twin.yaml")
			if err != nil {
				t.Fatalf("YAML twin: %v\n%s", err, src)
			}
			var yamlCfg any
			for _, n := range pf.Graph.Nodes {
				if n.ID == "n" {
					yamlCfg = n.Config
				}
			}
			goCfg, err := engine.CompleteConfig(spec, c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(goCfg, yamlCfg) {
				t.Errorf("completed literal and YAML differ:\nGo:   %+v\nYAML: %+v", goCfg, yamlCfg)
			}

			// Built in Go and run.
			b := zflow.New("literal-" + c.name)
			sink := "out"
			switch c.kind {
			case engine.KindSource:
				b.Source("n", c.name, c.cfg).Sink("out", "discard", nil, "n")
			case engine.KindTransform:
				inputs := []string{"g"}
				b.Source("g", "generate", gen)
				if c.name == "union" || c.name == "join" {
					b.Source("h", "generate", gen)
					inputs = append(inputs, "h")
				}
				b.Transform("n", c.name, c.cfg, inputs...).Sink("out", "discard", nil, "n")
			default:
				if c.name == "raw" {
					b.Source("g", "raw", rawIn)
				} else {
					b.Source("g", "generate", gen)
				}
				b.Sink("n", c.name, c.cfg, "g")
				sink = "n"
			}
			p, err := b.Build()
			if err != nil {
				t.Fatalf("build from %#v: %v", c.cfg, err)
			}
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			peerDone := make(chan error, 1)
			pb := peers[c.name]
			if k := c.kind.String() + "/" + c.name; peers[k] != nil {
				pb = peers[k]
			}
			if pb != nil {
				pp, err := pb.Build()
				if err != nil {
					t.Fatal(err)
				}
				go func() { _, err := pp.Run(context.Background()); peerDone <- err }()
			} else {
				peerDone <- nil
			}
			sum, err := p.Run(context.Background(), zflow.WithAllocator(mem), zflow.WithStdout(io.Discard))
			if perr := <-peerDone; perr != nil {
				t.Errorf("peer: %v", perr)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sum.Op(sink).RowsIn; got != c.rows {
				t.Errorf("%s got %d rows, want %d", sink, got, c.rows)
			}
			if path := reflect.ValueOf(c.cfg).Elem().FieldByName("Path"); c.kind == engine.KindSink && path.IsValid() {
				if st, err := os.Stat(path.String()); err != nil || st.Size() == 0 {
					t.Errorf("sink file: %v", fmt.Sprint(err))
				}
			}
		})
	}
}

// writeLookupTable writes a Parquet table of s (the strings generate makes
// for column s) and a value: a table for lookup_join.
func writeLookupTable(t *testing.T, path string) {
	t.Helper()
	y := "version: 1\nname: table\nsources:\n  g: {type: generate, rows: 5000, columns: [{name: s, type: string}, {name: x, type: int64}]}\n" +
		"operators:\n  d: {type: distinct, inputs: [g], by: [s]}\nsinks:\n  out: {type: parquet, inputs: [d], path: " + path + "}\n"
	p, err := zflow.Parse([]byte(y), "table.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}
