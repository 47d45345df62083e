package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"

	"github.com/zflowdev/zflow/internal/atomicfile"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// FileExporter keeps a run's spans and writes them, on Shutdown, to a file
// in OTLP/JSON: one TracesData object per line. The file appears under its
// final name only when complete.
type FileExporter struct {
	path string
	mu   sync.Mutex
	rs   map[string]*otlpResourceSpans // by resource identity
	keys []string
	done bool
}

// NewFileExporter returns an exporter writing to path on Shutdown.
func NewFileExporter(path string) *FileExporter {
	return &FileExporter{path: path, rs: map[string]*otlpResourceSpans{}}
}

// ExportSpans keeps spans in memory until Shutdown.
func (e *FileExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return fmt.Errorf("telemetry: trace file %s: exporter already shut down", e.path)
	}
	for _, s := range spans {
		key := ""
		if r := s.Resource(); r != nil {
			key = r.Encoded(attribute.DefaultEncoder())
		}
		rs := e.rs[key]
		if rs == nil {
			rs = &otlpResourceSpans{}
			if r := s.Resource(); r != nil {
				rs.Resource.Attributes = otlpAttrs(r.Attributes())
			}
			e.rs[key] = rs
			e.keys = append(e.keys, key)
		}
		scope := s.InstrumentationScope()
		var ss *otlpScopeSpans
		for i := range rs.ScopeSpans {
			if rs.ScopeSpans[i].Scope.Name == scope.Name && rs.ScopeSpans[i].Scope.Version == scope.Version {
				ss = &rs.ScopeSpans[i]
			}
		}
		if ss == nil {
			rs.ScopeSpans = append(rs.ScopeSpans, otlpScopeSpans{Scope: otlpScope{Name: scope.Name, Version: scope.Version}})
			ss = &rs.ScopeSpans[len(rs.ScopeSpans)-1]
		}
		ss.Spans = append(ss.Spans, otlpSpanOf(s))
	}
	return nil
}

// Shutdown writes the file.
func (e *FileExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return nil
	}
	e.done = true
	f, err := atomicfile.Create(e.path)
	if err != nil {
		return fmt.Errorf("telemetry: trace file: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, k := range e.keys {
		if err := enc.Encode(otlpTracesData{ResourceSpans: []otlpResourceSpans{*e.rs[k]}}); err != nil {
			f.Abort()
			return fmt.Errorf("telemetry: write trace file %s: %w", e.path, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Abort()
		return fmt.Errorf("telemetry: write trace file %s: %w", e.path, err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("telemetry: write trace file %s: %w", e.path, err)
	}
	return nil
}

// The OTLP/JSON shapes (opentelemetry-proto, JSON mapping: lowerCamelCase
// names, hex trace and span ids, 64-bit integers as strings).
type otlpTracesData struct {
	ResourceSpans []otlpResourceSpans `json:"resourceSpans"`
}

type otlpResourceSpans struct {
	Resource   otlpResource     `json:"resource"`
	ScopeSpans []otlpScopeSpans `json:"scopeSpans"`
}

type otlpResource struct {
	Attributes []otlpKeyValue `json:"attributes,omitempty"`
}

type otlpScopeSpans struct {
	Scope otlpScope  `json:"scope"`
	Spans []otlpSpan `json:"spans"`
}

type otlpScope struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

type otlpSpan struct {
	TraceID      string         `json:"traceId"`
	SpanID       string         `json:"spanId"`
	ParentSpanID string         `json:"parentSpanId,omitempty"`
	Name         string         `json:"name"`
	Kind         int            `json:"kind"`
	Start        string         `json:"startTimeUnixNano"`
	End          string         `json:"endTimeUnixNano"`
	Attributes   []otlpKeyValue `json:"attributes,omitempty"`
	Events       []otlpEvent    `json:"events,omitempty"`
	Links        []otlpLink     `json:"links,omitempty"`
	Status       otlpStatus     `json:"status"`
}

type otlpEvent struct {
	Time       string         `json:"timeUnixNano"`
	Name       string         `json:"name"`
	Attributes []otlpKeyValue `json:"attributes,omitempty"`
}

type otlpLink struct {
	TraceID    string         `json:"traceId"`
	SpanID     string         `json:"spanId"`
	Attributes []otlpKeyValue `json:"attributes,omitempty"`
}

type otlpStatus struct {
	Code    int    `json:"code,omitempty"` // 0 unset, 1 ok, 2 error
	Message string `json:"message,omitempty"`
}

type otlpKeyValue struct {
	Key   string       `json:"key"`
	Value otlpAnyValue `json:"value"`
}

type otlpAnyValue struct {
	String *string         `json:"stringValue,omitempty"`
	Bool   *bool           `json:"boolValue,omitempty"`
	Int    *string         `json:"intValue,omitempty"`
	Double any             `json:"doubleValue,omitempty"` // a float64, or "NaN", "Infinity", "-Infinity" (proto3 JSON)
	Array  *otlpArrayValue `json:"arrayValue,omitempty"`
}

type otlpArrayValue struct {
	Values []otlpAnyValue `json:"values"`
}

func otlpSpanOf(s sdktrace.ReadOnlySpan) otlpSpan {
	sc := s.SpanContext()
	o := otlpSpan{
		TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(),
		Name: s.Name(), Kind: int(s.SpanKind()),
		Start:      strconv.FormatInt(s.StartTime().UnixNano(), 10),
		End:        strconv.FormatInt(s.EndTime().UnixNano(), 10),
		Attributes: otlpAttrs(s.Attributes()),
	}
	if p := s.Parent(); p.IsValid() {
		o.ParentSpanID = p.SpanID().String()
	}
	for _, ev := range s.Events() {
		o.Events = append(o.Events, otlpEvent{Time: strconv.FormatInt(ev.Time.UnixNano(), 10), Name: ev.Name, Attributes: otlpAttrs(ev.Attributes)})
	}
	for _, l := range s.Links() {
		o.Links = append(o.Links, otlpLink{TraceID: l.SpanContext.TraceID().String(),
			SpanID: l.SpanContext.SpanID().String(), Attributes: otlpAttrs(l.Attributes)})
	}
	switch s.Status().Code {
	case codes.Ok:
		o.Status.Code = 1
	case codes.Error:
		o.Status.Code = 2
	}
	o.Status.Message = s.Status().Description
	return o
}

// otlpArray is an array attribute's values, each as its own AnyValue.
func otlpArray[T any](vals []T, wrap func(T) attribute.Value) *otlpArrayValue {
	a := &otlpArrayValue{Values: make([]otlpAnyValue, 0, len(vals))}
	for _, v := range vals {
		a.Values = append(a.Values, otlpValue(wrap(v)))
	}
	return a
}

// jsonDouble is f as proto3 JSON writes a double: encoding/json refuses NaN
// and the infinities, which the mapping spells as strings.
func jsonDouble(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

func otlpAttrs(kv []attribute.KeyValue) []otlpKeyValue {
	out := make([]otlpKeyValue, 0, len(kv))
	for _, a := range kv {
		out = append(out, otlpKeyValue{Key: string(a.Key), Value: otlpValue(a.Value)})
	}
	return out
}

func otlpValue(v attribute.Value) otlpAnyValue {
	var o otlpAnyValue
	switch v.Type() {
	case attribute.BOOL:
		b := v.AsBool()
		o.Bool = &b
	case attribute.INT64:
		s := strconv.FormatInt(v.AsInt64(), 10)
		o.Int = &s
	case attribute.FLOAT64:
		o.Double = jsonDouble(v.AsFloat64())
	case attribute.BOOLSLICE:
		o.Array = otlpArray(v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		o.Array = otlpArray(v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		o.Array = otlpArray(v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		o.Array = otlpArray(v.AsStringSlice(), attribute.StringValue)
	default:
		s := v.Emit()
		o.String = &s
	}
	return o
}
