//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// fioJob is one fio run: the file, the pattern and the engine. Every job
// is time-based (it loops over the file until Runtime is up), so zflow's
// side reads for the same time and both report bytes per second.
type fioJob struct {
	File    string
	Size    int64 // bytes of the file the job covers (fio --size)
	Random  bool
	Block   int
	Depth   int
	Engine  string // psync, io_uring, libaio, mmap
	Direct  bool
	Runtime time.Duration
	Once    bool // read the file once instead (no --time_based)
}

// args is the fio command line of j: one job, read-only, JSON output.
// Random reads go without fio's random map (offsets may repeat, as
// zflow's side draws them), and fio's defaults stand otherwise (no fixed
// buffers, no registered files, no polling: zflow's side uses none of
// them either).
func (j fioJob) args() []string {
	rw := "read"
	if j.Random {
		rw = "randread"
	}
	a := []string{
		"--name=zflow-bench", "--filename=" + j.File, "--readonly",
		"--rw=" + rw, "--bs=" + strconv.Itoa(j.Block), "--iodepth=" + strconv.Itoa(j.Depth),
		"--ioengine=" + j.Engine, "--direct=" + b2s(j.Direct),
		"--size=" + strconv.FormatInt(j.Size, 10), "--output-format=json",
	}
	if !j.Once {
		a = append(a, "--time_based", fmt.Sprintf("--runtime=%dms", j.Runtime.Milliseconds()))
	}
	if j.Random {
		a = append(a, "--norandommap", "--randrepeat=0")
	}
	return a
}

func b2s(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// fioResult is what the benchmark takes from fio's JSON report.
type fioResult struct {
	BytesPerSec float64 // read bw_bytes
	IOPS        float64 // read iops
	CPU         float64 // usr_cpu + sys_cpu, percent of one CPU
}

// fioReport is the part of fio's --output-format=json this benchmark
// reads (fio 3.x: jobs[].read.bw_bytes, .iops, .io_bytes, .runtime in ms;
// jobs[].usr_cpu, sys_cpu in percent; jobs[].error).
type fioReport struct {
	Version string `json:"fio version"`
	Jobs    []struct {
		Name  string `json:"jobname"`
		Error int    `json:"error"`
		Read  struct {
			IOBytes   int64   `json:"io_bytes"`
			BwBytes   float64 `json:"bw_bytes"`
			IOPS      float64 `json:"iops"`
			RuntimeMs int64   `json:"runtime"`
		} `json:"read"`
		UsrCPU float64 `json:"usr_cpu"`
		SysCPU float64 `json:"sys_cpu"`
	} `json:"jobs"`
}

// parseFio reads fio's JSON output. fio may print notes before the JSON
// on the same stream ("note: both iodepth >= 1 and synchronous I/O engine
// are selected, queue depth will be capped at 1"), so the report starts
// at the first line that opens an object. A job with an error, or that
// read nothing, is an error.
func parseFio(out []byte) (fioResult, error) {
	start := -1
	for i := 0; i < len(out); {
		if out[i] == '{' {
			start = i
			break
		}
		nl := bytes.IndexByte(out[i:], '\n')
		if nl < 0 {
			break
		}
		i += nl + 1
	}
	if start < 0 {
		return fioResult{}, fmt.Errorf("fio: no JSON report in its output: %q", clip(out))
	}
	var rep fioReport
	if err := json.Unmarshal(out[start:], &rep); err != nil {
		return fioResult{}, fmt.Errorf("fio: parse the JSON report: %w", err)
	}
	if len(rep.Jobs) != 1 {
		return fioResult{}, fmt.Errorf("fio: want 1 job in the report, got %d", len(rep.Jobs))
	}
	j := rep.Jobs[0]
	if j.Error != 0 {
		return fioResult{}, fmt.Errorf("fio: job %s failed with error %d", j.Name, j.Error)
	}
	if j.Read.IOBytes <= 0 || j.Read.RuntimeMs <= 0 {
		return fioResult{}, fmt.Errorf("fio: job %s read nothing (%d bytes in %d ms)", j.Name, j.Read.IOBytes, j.Read.RuntimeMs)
	}
	return fioResult{BytesPerSec: j.Read.BwBytes, IOPS: j.Read.IOPS, CPU: j.UsrCPU + j.SysCPU}, nil
}

func clip(b []byte) []byte {
	if len(b) > 300 {
		return b[:300]
	}
	return b
}

// runFio runs j and parses its report.
func runFio(ctx context.Context, j fioJob) (fioResult, error) {
	cmd := exec.CommandContext(ctx, "fio", j.args()...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fioResult{}, fmt.Errorf("fio %s: %w: %s", strings.Join(j.args(), " "), err, strings.TrimSpace(stderr.String()))
	}
	r, err := parseFio(out)
	if err != nil {
		return r, fmt.Errorf("%w (fio %s)", err, strings.Join(j.args(), " "))
	}
	return r, nil
}

// fioEngines lists which of the wanted engines this fio offers
// (fio --enghelp), so a build without libaio is reported, not failed.
func fioEngines(ctx context.Context, want []string) ([]string, []string, error) {
	out, err := exec.CommandContext(ctx, "fio", "--enghelp").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("fio --enghelp: %w (install fio: apt-get install fio)", err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	var ok, missing []string
	for _, e := range want {
		if have[e] {
			ok = append(ok, e)
		} else {
			missing = append(missing, e)
		}
	}
	if len(ok) == 0 {
		return nil, missing, errors.New("fio offers none of the engines " + strings.Join(want, ", "))
	}
	return ok, missing, nil
}

// fioVersion is fio --version's line.
func fioVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "fio", "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
