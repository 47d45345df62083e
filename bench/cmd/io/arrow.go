//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/zflowdev/zflow/engine"
)

// genPipeline writes rows generated rows (the columns of the DuckDB
// comparison's trades: timestamp, 20 symbols, price, quantity) to an Arrow
// IPC file at path.
const genPipeline = `version: 1
name: bench_io_gen
settings:
  batch_rows: 65536
sources:
  trades:
    type: generate
    seed: 20240102
    rows: %d
    columns:
      - {name: ts, type: timestamp, start: "2024-01-02T09:30:00Z", step: 1ms}
      - {name: symbol, type: string, cardinality: 20, prefix: SYM}
      - {name: price, type: float64, min: 10, max: 500, cardinality: 49001}
      - {name: qty, type: int64, min: 1, max: 1000}
sinks:
  out: {type: arrow, inputs: [trades], path: %q}
`

// readPipeline reads the Arrow IPC file at path with the arrow source
// (its defaults, but io and direct) into discard.
const readPipeline = `version: 1
name: bench_io_arrow
sources:
  in: {type: arrow, path: %q, io: %s, direct: %t}
sinks:
  out: {type: discard, inputs: [in]}
`

// makeArrowFile writes an Arrow IPC file of about size bytes at path with
// zflow: a run of 1 Mi rows first tells the bytes per row.
func makeArrowFile(ctx context.Context, zflow, path string, size int64) (FileInfo, error) {
	const probeRows = 1 << 20
	probe := path + ".probe"
	defer os.Remove(probe)
	if err := zflowRun(ctx, zflow, fmt.Sprintf(genPipeline, probeRows, probe), filepath.Dir(path), nil); err != nil {
		return FileInfo{}, err
	}
	st, err := os.Stat(probe)
	if err != nil {
		return FileInfo{}, err
	}
	rows := size * probeRows / st.Size()
	if err := zflowRun(ctx, zflow, fmt.Sprintf(genPipeline, rows, path), filepath.Dir(path), nil); err != nil {
		return FileInfo{}, err
	}
	if st, err = os.Stat(path); err != nil {
		return FileInfo{}, err
	}
	return FileInfo{Path: path, Bytes: st.Size(), Rows: rows}, nil
}

// arrowResult is one arrow source → discard run.
type arrowResult struct {
	Elapsed time.Duration // the run's own (engine.Summary.Elapsed): from the start of the run to its end
	Wall    time.Duration // the zflow process, start-up and compile included
	IO      string        // the source's backend and why
	Rows    int64
}

// runArrow runs the arrow source → discard on path with io and direct, as
// `zflow run --quiet --json=FILE`.
func runArrow(ctx context.Context, zflow, path, io string, direct bool) (arrowResult, error) {
	var sum engine.Summary
	t0 := time.Now()
	if err := zflowRun(ctx, zflow, fmt.Sprintf(readPipeline, path, io, direct), filepath.Dir(path), &sum); err != nil {
		return arrowResult{}, err
	}
	wall := time.Since(t0)
	src := sum.Op("in")
	if src == nil {
		return arrowResult{}, fmt.Errorf("the run summary has no operator in")
	}
	return arrowResult{Elapsed: sum.Elapsed, Wall: wall, IO: src.IO, Rows: src.RowsOut}, nil
}

// zflowRun writes pipeline next to the data (in dir) and runs it with
// `zflow run --quiet`; with sum, --json=FILE and the summary decoded into it.
func zflowRun(ctx context.Context, zflow, pipeline, dir string, sum *engine.Summary) error {
	f, err := os.CreateTemp(dir, "zflow-bench-io-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(pipeline); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	args := []string{"run", "--quiet"}
	js := f.Name() + ".json"
	if sum != nil {
		args = append(args, "--json="+js)
		defer os.Remove(js)
	}
	cmd := exec.CommandContext(ctx, zflow, append(args, f.Name())...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", zflow, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	if sum == nil {
		return nil
	}
	b, err := os.ReadFile(js)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, sum); err != nil {
		return fmt.Errorf("%s: %w", js, err)
	}
	return nil
}
