//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/io/netzc"
)

// The Arrow stream end to end: one `zflow run` reads an Arrow IPC file
// (mapped from tmpfs, by reference) into tcp_out, another runs tcp_in into
// discard, both at their defaults (protocol zflow, send auto, validate
// full), as two processes in the two namespaces.
type streamRun struct {
	BodyBytes      int64 // Arrow bytes of the batches sent (tcp_out's bytes in)
	Batches        int64
	Seconds        float64 // the sending run's elapsed time: first batch to the acknowledged end
	SenderCPUSec   float64 // whole processes (getrusage of the child)
	ReceiverCPUSec float64
}

const genPipeline = `version: 1
name: bench_net_data
sources:
  g:
    type: generate
    rows: %d
    columns:
      - {name: id, type: int64, sequence: true}
      - {name: price, type: float64}
      - {name: qty, type: int32}
      - {name: symbol, type: string}
      - {name: ts, type: timestamp}
sinks:
  out: {type: arrow, inputs: [g], path: %s}
`

const sendPipeline = `version: 1
name: bench_net_send
sources:
  f: {type: arrow, path: %s}
sinks:
  t: {type: tcp_out, inputs: [f], address: "%s"}
`

const recvPipeline = `version: 1
name: bench_net_recv
sources:
  in: {type: tcp_in, listen: "%s"}
sinks:
  d: {type: discard, inputs: [in]}
`

// makeStreamData writes the Arrow file of rows rows into dir with zflow
// and returns its path.
func makeStreamData(ctx context.Context, zflow, dir string, rows int64) (string, error) {
	data := filepath.Join(dir, "stream.arrow")
	p := filepath.Join(dir, "gen.yaml")
	if err := os.WriteFile(p, fmt.Appendf(nil, genPipeline, rows, data), 0o644); err != nil {
		return "", err
	}
	if out, err := exec.CommandContext(ctx, zflow, "run", "--quiet", p).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s run %s: %v: %s", zflow, p, err, out)
	}
	return data, nil
}

// runStream runs the two processes once on n.
func runStream(ctx context.Context, n *network, zflow, dir, data string) (streamRun, error) {
	port := 7070
	if n.recvNS == "" {
		var err error
		if port, err = freePort(n.recvIP); err != nil {
			return streamRun{}, err
		}
	}
	addr := net.JoinHostPort(n.recvIP, strconv.Itoa(port))
	in, out := filepath.Join(dir, "recv.yaml"), filepath.Join(dir, "send.yaml")
	if err := os.WriteFile(in, fmt.Appendf(nil, recvPipeline, addr), 0o644); err != nil {
		return streamRun{}, err
	}
	if err := os.WriteFile(out, fmt.Appendf(nil, sendPipeline, data, addr), 0o644); err != nil {
		return streamRun{}, err
	}
	var recvErr bytes.Buffer
	rc := n.receiverCmd(ctx, zflow, "run", "--quiet", in)
	rc.Stderr = &recvErr
	if err := rc.Start(); err != nil {
		return streamRun{}, err
	}
	if err := waitListening(rc.Process.Pid, port, 10*time.Second); err != nil {
		_ = rc.Process.Kill()
		_ = rc.Wait()
		return streamRun{}, fmt.Errorf("tcp_in: %w: %s", err, recvErr.String())
	}
	summary := filepath.Join(dir, "send.json")
	sc := n.senderCmd(ctx, zflow, "run", "--quiet", "--json="+summary, out)
	sendOut, serr := sc.CombinedOutput()
	rerr := rc.Wait()
	if serr != nil || rerr != nil {
		return streamRun{}, fmt.Errorf("tcp_out run: %v %s; tcp_in run: %v %s", serr, sendOut, rerr, recvErr.String())
	}
	r, err := readSummary(summary)
	if err != nil {
		return r, err
	}
	r.SenderCPUSec = (sc.ProcessState.UserTime() + sc.ProcessState.SystemTime()).Seconds()
	r.ReceiverCPUSec = (rc.ProcessState.UserTime() + rc.ProcessState.SystemTime()).Seconds()
	return r, nil
}

// writeFile sends the Arrow file's bytes, mapped and populated as the
// arrow source maps them, through netzc's copy path (writev, as tcp_out's
// auto ends up sending on this host) in messages of size bytes to the
// receiver of n: what sending those bytes costs without Arrow, the engine
// or the stream protocol, from memory as cold as the stream's.
func writeFile(ctx context.Context, n *network, data string, size int) (pathResult, error) {
	f, err := os.Open(data)
	if err != nil {
		return pathResult{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return pathResult{}, err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return pathResult{}, fmt.Errorf("mmap %s: %w", data, err)
	}
	defer unix.Munmap(m)
	_ = unix.Madvise(m, unix.MADV_POPULATE_READ)
	return runChunks(ctx, n.sendNS, n.recvAddr, netzc.Copy, m, size)
}

// runSummary is the part of `zflow run --json` read here.
type runSummary struct {
	ElapsedNs int64 `json:"elapsed_ns"`
	Operators []struct {
		Type      string `json:"type"`
		BytesIn   int64  `json:"bytes_in"`
		BatchesIn int64  `json:"batches_in"`
	} `json:"operators"`
}

// readSummary takes the sending run's tcp_out figures from its --json
// summary.
func readSummary(path string) (streamRun, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return streamRun{}, err
	}
	return parseSummary(b)
}

func parseSummary(b []byte) (streamRun, error) {
	var s runSummary
	if err := json.Unmarshal(b, &s); err != nil {
		return streamRun{}, fmt.Errorf("zflow run --json: %w", err)
	}
	for _, op := range s.Operators {
		if op.Type == "tcp_out" && op.BytesIn > 0 && s.ElapsedNs > 0 {
			return streamRun{BodyBytes: op.BytesIn, Batches: op.BatchesIn, Seconds: float64(s.ElapsedNs) / 1e9}, nil
		}
	}
	return streamRun{}, fmt.Errorf("zflow run --json: no tcp_out with bytes in the summary")
}
