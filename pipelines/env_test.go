package pipelines

import (
	"strconv"
	"strings"
	"testing"
)

func TestExpandEnv(t *testing.T) {
	env := mapEnv(map[string]string{"A": "alpha", "EMPTY": "", "DIR": "/data"})
	for _, tc := range []struct {
		in, want string
		errs     []string // "offset: message"
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha"},
		{in: "x${A}y", want: "xalphay"},
		{in: "${DIR}/t.parquet", want: "/data/t.parquet"},
		{in: "${B:-bee}", want: "bee"},
		{in: "${EMPTY:-def}", want: "def"},
		{in: "${EMPTY}", want: ""},
		{in: "${A:-def}", want: "alpha"},
		{in: "${B:-}", want: ""},
		{in: "${B:-a b:c}", want: "a b:c"},
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "cost$ $x $", want: "cost$ $x $"},
		{in: "a$$$$b", want: "a$$b"},
		{in: "${A}${A}", want: "alphaalpha"},
		{in: "${NOPE}", errs: []string{`0: environment variable "NOPE" is not set (use ${NOPE:-default} to give a default)`}},
		{in: "ab ${X} ${Y}", errs: []string{
			`3: environment variable "X" is not set (use ${X:-default} to give a default)`,
			`8: environment variable "Y" is not set (use ${Y:-default} to give a default)`,
		}},
		{in: "${A", errs: []string{`0: unterminated ${ (want ${NAME} or ${NAME:-default}; write $$ for a literal $)`}},
		{in: "${}", errs: []string{`0: invalid variable name "" in ${} (want letters, digits and _, not starting with a digit)`}},
		{in: "${1A}", errs: []string{`0: invalid variable name "1A" in ${1A} (want letters, digits and _, not starting with a digit)`}},
		{in: "${A-b}", errs: []string{`0: invalid variable name "A-b" in ${A-b} (want letters, digits and _, not starting with a digit)`}},
		{in: "${A:-${B}}", errs: []string{`0: nested ${...} in the default of ${A...} is not supported`}},
	} {
		got, _, errs := expandEnv(tc.in, env)
		var gotErrs []string
		for _, e := range errs {
			gotErrs = append(gotErrs, strconv.Itoa(e.off)+": "+e.msg)
		}
		if strings.Join(gotErrs, "\n") != strings.Join(tc.errs, "\n") {
			t.Errorf("%q: errors %q, want %q", tc.in, gotErrs, tc.errs)
			continue
		}
		if len(tc.errs) == 0 && got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEnvOffsets(t *testing.T) {
	in := "a${A}b$$c${B:-xy}d"
	out, sub, errs := expandEnv(in, mapEnv(map[string]string{"A": "ALPHA"}))
	if len(errs) > 0 || out != "aALPHAb$cxyd" {
		t.Fatalf("got %q %v", out, errs)
	}
	for k, want := range map[int]int{0: 0, 1: 1, 5: 1, 6: 5, 7: 6, 8: 8, 9: 9, 10: 9, 11: 17, 12: len(in)} {
		if got := sub.inOffset(k); got != want {
			t.Errorf("inOffset(%d) = %d, want %d", k, got, want)
		}
	}
}

func TestEnvErrorPosition(t *testing.T) {
	src := "version: 1\nname: x\nsources:\n  s: {type: csv, path: \"${HOME:-/h}/${DATA_DIR}/t.csv\"}\nsinks:\n  o: {type: stdout, inputs: s}\n"
	_, err := Parse([]byte(src), "e.yaml", WithRegistry(newTestRegistry()), WithEnv(mapEnv(nil)))
	want := `e.yaml:4:37: environment variable "DATA_DIR" is not set (use ${DATA_DIR:-default} to give a default)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
