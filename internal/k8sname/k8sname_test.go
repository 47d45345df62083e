package k8sname

import (
	"strings"
	"testing"
)

func TestIsLabel(t *testing.T) {
	for s, want := range map[string]bool{"default": true, "zflow-a-1": true, "": false, "-a": false, "a-": false,
		"A": false, "a_b": false, "z/../..": false, strings.Repeat("a", 63): true, strings.Repeat("a", 64): false} {
		if IsLabel(s) != want {
			t.Errorf("IsLabel(%q) = %v", s, !want)
		}
	}
}

func TestValue(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		repl byte
		want string
	}{
		{"t p/ü-", 63, '_', "t_p"},
		{"mlx5_0/x", 50, '-', "mlx5_0-x"},
		{"-" + strings.Repeat("a", 70) + "-", 50, '-', strings.Repeat("a", 50)},
		{"ab" + strings.Repeat(".", 70), 10, '-', "ab"},
	} {
		if got := Value(c.in, c.max, c.repl); got != c.want {
			t.Errorf("Value(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}
