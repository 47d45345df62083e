package telemetry

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// A collector that refuses connections (nothing listens at the endpoint)
// must not cost a run seconds. The OTLP exporters retry an unavailable
// collector with backoff until the export timeout (5 s by default: what
// every short run paid at its final flush over gRPC), so each wrapped
// exporter first asks a reach whether the collector accepts TCP
// connections at all. A dial that is refused (or fails, or takes longer
// than probeTimeout) fails the export at once with that reason; the
// answer is kept for probeEvery, so a long run dials at most that often
// and picks the collector up when it comes back. A collector that accepts
// the connection and then hangs is still bounded by the export timeout.

const (
	probeEvery   = 10 * time.Second
	probeTimeout = time.Second
)

// reach remembers whether the collector at addr accepted a connection.
type reach struct {
	addr    string // host:port
	timeout time.Duration

	mu  sync.Mutex
	at  time.Time // of the last dial; zero before the first
	err error     // its result
}

// newReach returns the probe of an OTLP endpoint, or nil when its address
// cannot be told (the exporter then finds it from variables of its own) or
// the exporter may go through a proxy (HTTPS_PROXY and the like, which both
// the HTTP and the gRPC exporters honour): the collector may then be out of
// our direct reach and still get the data.
func newReach(protocol, endpoint, signal string, timeout time.Duration) *reach {
	addr := collectorAddr(protocol, endpoint, signal)
	if addr == "" || proxied() {
		return nil
	}
	return &reach{addr: addr, timeout: min(timeout, probeTimeout)}
}

// check dials the collector unless it did so less than probeEvery ago,
// and returns why it cannot be reached (nil when it accepted the
// connection, which is closed at once). Safe for concurrent use; a nil
// reach always says yes.
func (r *reach) check(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && time.Since(r.at) < probeEvery {
		return r.err
	}
	d := net.Dialer{Timeout: r.timeout}
	conn, err := d.DialContext(ctx, "tcp", r.addr)
	if err == nil {
		conn.Close()
	} else {
		err = fmt.Errorf("collector %s cannot be reached: %w", r.addr, err)
	}
	r.at, r.err = time.Now(), err
	return err
}

// proxied reports whether a proxy variable is set.
func proxied() bool {
	for _, v := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"} {
		if os.Getenv(v) != "" {
			return true
		}
	}
	return false
}

// collectorAddr is the host:port an OTLP exporter of protocol (grpc or
// http) sends signal ("TRACES" or "METRICS") to: endpoint as host:port or
// a URL, or the exporters' default when it is empty. It is "" when the
// exporter would take its endpoint from a signal-specific variable
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or the address has no port to dial.
func collectorAddr(protocol, endpoint, signal string) string {
	p, _ := parseProtocol(protocol)
	if endpoint == "" {
		if os.Getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != "" {
			return ""
		}
		if p == "http" {
			return "localhost:4318"
		}
		return "localhost:4317"
	}
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil || u.Hostname() == "" {
			return ""
		}
		port := u.Port()
		switch {
		case port != "":
		case u.Scheme == "https":
			port = "443"
		case u.Scheme == "http":
			port = "80"
		default:
			return ""
		}
		return net.JoinHostPort(u.Hostname(), port)
	}
	if _, _, err := net.SplitHostPort(endpoint); err != nil {
		return ""
	}
	return endpoint
}
