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
