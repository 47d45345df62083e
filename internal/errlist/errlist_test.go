package errlist

import (
	"errors"
	"io"
	"testing"
)

type placed struct{ msg string }

func (p *placed) Error() string { return p.msg }

type list []*placed

func (l list) Error() string   { return Join(l) }
func (l list) Unwrap() []error { return Unwrap(l) }

func TestJoin(t *testing.T) {
	for _, tc := range []struct {
		l    list
		want string
	}{
		{nil, ""},
		{list{{"a"}}, "a"},
		{list{{"a"}, {"b: c"}, {"d"}}, "a\nb: c\nd"},
	} {
		if got := tc.l.Error(); got != tc.want {
			t.Errorf("Join(%v) = %q, want %q", tc.l, got, tc.want)
		}
	}
	if got := Join([]error{io.EOF, errors.New("x")}); got != "EOF\nx" {
		t.Errorf("Join of []error = %q", got)
	}
}

func TestUnwrap(t *testing.T) {
	second := &placed{"second"}
	var err error = list{{"first"}, second}
	var p *placed
	if !errors.As(err, &p) || p.msg != "first" {
		t.Fatalf("errors.As found %v, want the first", p)
	}
	if !errors.Is(err, second) {
		t.Error("errors.Is does not see the second error")
	}
	if got := Unwrap(list{}); len(got) != 0 {
		t.Errorf("Unwrap(empty) = %v", got)
	}
}
