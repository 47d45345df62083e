// Command profile runs a pipeline file the way `zflow run` does (zflow.Load,
// then Run with the default allocator) under the Go profilers, for finding
// where a benchmark's time goes; the zflow CLI has no profiling flags.
//
//	go build -o bin/zflow-profile ./bench/cmd/profile
//	bin/zflow-profile -cpuprofile cpu.prof [-memprofile mem.prof] [-trace trace.out] bench/pipelines/filter_project.yaml
//	go tool pprof -top -cum bin/zflow-profile cpu.prof
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"

	"github.com/zflowdev/zflow"
)

func main() {
	cpu := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	mem := flag.String("memprofile", "", "write an allocation profile (alloc_space) to this file at the end")
	tr := flag.String("trace", "", "write an execution trace to this file")
	rate := flag.Int("memrate", 0, "runtime.MemProfileRate (0 keeps the default)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: profile [-cpuprofile F] [-memprofile F] [-trace F] PIPELINE.yaml")
		os.Exit(2)
	}
	if *rate > 0 {
		runtime.MemProfileRate = *rate
	}
	p, err := zflow.Load(flag.Arg(0))
	if err != nil {
		fatal(err)
	}
	if *cpu != "" {
		f, err := os.Create(*cpu)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer f.Close()
	}
	if *tr != "" {
		f, err := os.Create(*tr)
		if err != nil {
			fatal(err)
		}
		if err := trace.Start(f); err != nil {
			fatal(err)
		}
		defer f.Close()
	}
	t0 := time.Now()
	sum, err := p.Run(context.Background())
	el := time.Since(t0)
	if *tr != "" {
		trace.Stop()
	}
	if *cpu != "" {
		pprof.StopCPUProfile()
	}
	if *mem != "" {
		f, err := os.Create(*mem)
		if err != nil {
			fatal(err)
		}
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			fatal(err)
		}
		f.Close()
	}
	if err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", p.Name(), el)
	js, _ := json.MarshalIndent(sum, "", "  ")
	fmt.Println(string(js))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "profile:", err)
	os.Exit(1)
}
