//go:build linux

package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/zflowdev/zflow/bench/internal/runinfo"
)

// startProfile starts a CPU profile into path; with show, the returned
// stop also prints it base64 between "ZG: PROF-BEGIN" and "ZG: PROF-END"
// lines (the guest's way back to the host).
func startProfile(path string, show bool) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		if !show {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rdma bench:", err)
			return
		}
		fmt.Printf("ZG: PROF-BEGIN\n%s\nZG: PROF-END\n", base64.StdEncoding.EncodeToString(b))
	}, nil
}

// cpuTime is the CPU time this process and its children (ib_write_bw)
// have used.
func cpuTime() time.Duration { return runinfo.CPU() + runinfo.ChildrenCPU() }
