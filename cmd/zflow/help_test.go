package main

import (
	"strings"
	"testing"
)

// TestSubcommandHelp: --help and -h on every subcommand print its usage
// and flags on stdout and exit 0, with nothing on stderr.
func TestSubcommandHelp(t *testing.T) {
	for _, cmd := range []string{"run", "validate", "plan", "operators", "topology", "doctor"} {
		for _, flag := range []string{"--help", "-h"} {
			code, out, errOut := zflowRun(t, cmd, flag)
			if code != 0 || !strings.HasPrefix(out, "usage: zflow ") || errOut != "" {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q", cmd, flag, code, out, errOut)
			}
		}
	}
	if _, out, _ := zflowRun(t, "run", "--help"); !strings.Contains(out, "-json") || !strings.Contains(out, "PIPELINE.yaml") {
		t.Errorf("run --help:\n%s", out)
	}
}

// TestRunJSONRefusesStdoutSink: --json and a stdout sink would share
// stdout; the run is refused before anything runs.
func TestRunJSONRefusesStdoutSink(t *testing.T) {
	dir := t.TempDir()
	p := writeTemp(t, dir, "p.yaml", "version: 1\nname: j\nsources:\n  g: {type: generate, rows: 5, columns: [{name: a, type: int64}]}\nsinks:\n  show: {type: stdout, inputs: [g]}\n")
	code, out, errOut := zflowRun(t, "run", "--json", p)
	if code != 2 || out != "" || !strings.Contains(errOut, `sink "show" (stdout) writes its rows too`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := zflowRun(t, "run", "--quiet", p); code != 0 {
		t.Fatalf("without --json: exit %d, %s", code, errOut)
	}
}
