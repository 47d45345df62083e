// Command zflow runs, validates and explains zflow pipelines.
//
//	zflow run FILE        run a pipeline; progress on a terminal, summary at the end
//	                      (--quiet: nothing on stderr but errors; --json[=OUT]: the
//	                      summary, or an invalid file's errors, as JSON)
//	zflow validate FILE…  check pipeline files; print every error (--json: as JSON)
//	zflow plan FILE       print the compiled plan (--format text|dot|json)
//	zflow operators [NAME] list operators, or one operator's parameters
//	zflow nvmeof …        an NVMe/TCP target and a small initiator to check one
//	zflow version         print versions
//
// Exit codes: 0 ok, 1 run failure, 2 bad usage or invalid pipeline, 130 when
// interrupted by SIGINT after a clean shutdown (a second SIGINT kills).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

const (
	exitOK        = 0
	exitFailure   = 1
	exitUsage     = 2
	exitInterrupt = 130
)

// usageError is a bad command line: exit 2 with the message.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitError carries an exit code chosen by a command.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }

const usage = `zflow — a dataflow pipeline engine for Arrow batches

Usage:
  zflow run [--quiet] [--json[=OUT]] [--arena KIND] FILE
                                         run a pipeline (--json: the summary, or an
                                         invalid file's errors, as JSON on stdout or in OUT)
  zflow run --cluster kubernetes [--kubeconfig F] [--keep] FILE
                                         run it on Kubernetes: settings.cluster.workers pods,
                                         each over its share of the input, output published
                                         once all succeeded (docs/cluster.md)
  zflow validate [--json[=OUT]] FILE...  check pipeline files, print every error
  zflow plan [--format text|dot|json] FILE  print the compiled plan
  zflow plan --cluster kubernetes [--format text|yaml] FILE
                                         the cluster run: workers' shares, outputs, and (yaml)
                                         the Job and ConfigMap it would create
  zflow worker --run ID --workers N --dir DIR FILE
                                         one worker of a cluster run (what its pods execute)
  zflow operators [NAME]                 list operators, or one operator's parameters
  zflow topology [--json] [--check] [--sys DIR --proc DIR]
                                         the machine: NUMA and CXL nodes, hugepages, DAX, NVMe, NICs
  zflow doctor                           what hugepage/NUMA arenas lack here, with the fixing commands
  zflow shm ls [DIR] | inspect [--json] PATH | gc [--remove] PATH
                                         shared segments: list, what one holds, reclaim what dead
                                         processes left
  zflow nvmeof serve|discover|identify|read|write ...
                                         an NVMe/TCP target (until SIGINT/SIGTERM), and a small
                                         initiator for checking one (zflow nvmeof for details)
  zflow version                          print versions

Exit codes: 0 ok, 1 run failure, 2 bad usage or invalid pipeline, 130 interrupted.
`

func main() {
	os.Exit(runIO(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
// run is runIO with the process's standard input.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runIO(ctx, args, os.Stdin, stdout, stderr)
}

// runIO runs the command in args; a pipeline's path "-" reads stdin and
// writes stdout.
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = cmdRun(ctx, rest, stdin, stdout, stderr)
	case "worker":
		err = cmdWorker(ctx, rest, stdout, stderr)
	case "validate":
		err = cmdValidate(rest, stdout, stderr)
	case "plan":
		err = cmdPlan(rest, stdout, stderr)
	case "operators":
		err = cmdOperators(rest, stdout)
	case "topology":
		err = cmdTopology(ctx, rest, stdout, stderr)
	case "doctor":
		err = cmdTopology(ctx, append([]string{"--check"}, rest...), stdout, stderr)
	case "shm":
		err = cmdShm(rest, stdout, stderr)
	case "nvmeof":
		err = cmdNvmeof(ctx, rest, stdin, stdout, stderr)
	case "version", "--version", "-v":
		err = cmdVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		err = usageError{fmt.Sprintf("unknown command %q (known: run, validate, plan, worker, operators, topology, doctor, shm, nvmeof, version)", cmd)}
	}
	if err == nil {
		return exitOK
	}
	var ue usageError
	var ee exitError
	var hr helpRequest
	switch {
	case errors.As(err, &hr):
		hr.print(stdout)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "zflow: %s\n\n%s", ue.msg, usage)
		return exitUsage
	case errors.As(err, &ee):
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "zflow: %v\n", err)
	return exitFailure
}
