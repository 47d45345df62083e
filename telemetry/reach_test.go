package telemetry

import (
	"context"
	"net"
	"strings"
	"testing"
)

func TestCollectorAddr(t *testing.T) {
	cases := []struct {
		proto, endpoint, env, want string
	}{
		{"grpc", "", "", "localhost:4317"},
		{"http", "", "", "localhost:4318"},
		{"grpc", "", "http://elsewhere:1", ""}, // the exporter reads its own variable
		{"grpc", "collector:4317", "", "collector:4317"},
		{"http", "http://collector:4318/v1/traces", "", "collector:4318"},
		{"http", "https://collector/v1/traces", "", "collector:443"},
		{"http", "http://[::1]:4318", "", "[::1]:4318"},
		{"grpc", "collector", "", ""},
		{"grpc", "unix:///run/otel.sock", "", ""},
	}
	for _, c := range cases {
		t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", c.env)
		if got := collectorAddr(c.proto, c.endpoint, "TRACES"); got != c.want {
			t.Errorf("%s %q (env %q): %q, want %q", c.proto, c.endpoint, c.env, got, c.want)
		}
	}
}

// TestReach: a refused address is reported (and remembered), a listening
// one is not, and a nil reach says yes.
func TestReach(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()
	ctx := context.Background()
	if err := newReach("grpc", ln.Addr().String(), "TRACES", 0).check(ctx); err != nil {
		t.Errorf("listening collector: %v", err)
	}
	r := newReach("grpc", refused, "TRACES", 0)
	for range 2 {
		if err := r.check(ctx); err == nil || !strings.Contains(err.Error(), "collector "+refused+" cannot be reached") || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("refused collector: %v", err)
		}
	}
	var none *reach
	if err := none.check(ctx); err != nil {
		t.Error(err)
	}
	// Through a proxy the collector may be out of direct reach: no probe.
	t.Setenv("HTTPS_PROXY", "http://proxy.example:3128")
	if r := newReach("grpc", refused, "TRACES", 0); r != nil {
		t.Errorf("a probe with HTTPS_PROXY set: %+v", r)
	}
}
