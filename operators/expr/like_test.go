package expr

import (
	"context"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

func TestLikeMatcher(t *testing.T) {
	tests := []struct {
		pattern string
		kind    likeKind
		yes, no []string
	}{
		{"", likeExact, []string{""}, []string{"a"}},
		{"abc", likeExact, []string{"abc"}, []string{"ab", "abcd", "ABC"}},
		{"%", likeAll, []string{"", "x", "日本"}, nil},
		{"%%%", likeAll, []string{"", "x"}, nil},
		{"ab%", likePrefix, []string{"ab", "abc"}, []string{"a", "xab"}},
		{"%bc", likeSuffix, []string{"bc", "abc"}, []string{"bcd", "b"}},
		{"%b%", likeContains, []string{"b", "abc"}, []string{"", "ac"}},
		{"a%c", likePrefixSuffix, []string{"ac", "abc", "abbbc"}, []string{"a", "c", "acb"}},
		{"aba%aba", likePrefixSuffix, []string{"abaaba", "abaxaba"}, []string{"aba", "abab", "ababa"}},
		{"_", likeGeneral, []string{"a", "é", "日"}, []string{"", "ab"}},
		{"a_c", likeGeneral, []string{"abc", "aéc"}, []string{"ac", "abbc"}},
		{"%_", likeGeneral, []string{"a", "ab", "é"}, []string{""}},
		{"_%_", likeGeneral, []string{"ab", "éé", "abc"}, []string{"a", "é"}},
		{"%a_c%", likeGeneral, []string{"abc", "xxaécxx"}, []string{"ac", "abbc"}},
		{"a%b%c", likeGeneral, []string{"abc", "aXbYc", "abbc"}, []string{"ab", "acb", "bac"}},
		{"%a%b%", likeGeneral, []string{"ab", "xaxbx"}, []string{"ba", "a"}},
		{"a%%b", likePrefixSuffix, []string{"ab", "axb"}, []string{"a"}},
		{"%日_", likeGeneral, []string{"日本", "x日本"}, []string{"日", "日本本"}},
		{`a\%`, likeExact, []string{"a%"}, []string{"a", "ab"}},
		{`\_%`, likePrefix, []string{"_", "_x"}, []string{"x"}},
		{`%\\`, likeSuffix, []string{`a\`}, []string{"a"}},
	}
	for _, tt := range tests {
		m, err := compileLike(tt.pattern, '\\')
		if err != nil {
			t.Errorf("compileLike(%q): %v", tt.pattern, err)
			continue
		}
		if m.kind != tt.kind {
			t.Errorf("compileLike(%q).kind = %d, want %d", tt.pattern, m.kind, tt.kind)
		}
		for _, s := range tt.yes {
			if !m.match([]byte(s)) {
				t.Errorf("%q LIKE %q = false, want true", s, tt.pattern)
			}
		}
		for _, s := range tt.no {
			if m.match([]byte(s)) {
				t.Errorf("%q LIKE %q = true, want false", s, tt.pattern)
			}
		}
	}
	if _, err := compileLike(`ab\`, '\\'); err == nil {
		t.Error(`compileLike("ab\\") succeeded`)
	}
}

// likeRegexp translates a LIKE pattern into an anchored regular expression:
// the reference the matcher is checked against.
func likeRegexp(pattern string, esc rune) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	rs := []rune(pattern)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; {
		case r == esc && i+1 < len(rs):
			i++
			b.WriteString(regexp.QuoteMeta(string(rs[i])))
		case r == '%':
			b.WriteString(`.*`)
		case r == '_':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`)$`)
	return regexp.MustCompile(b.String())
}

func TestLikeAgainstRegexp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alpha := []string{"a", "b", "é", "日", "%", "_", "!"}
	word := func(n int, pat bool) string {
		var b strings.Builder
		for range rng.IntN(n) {
			s := alpha[rng.IntN(len(alpha))]
			if !pat && (s == "%" || s == "_") && rng.IntN(2) == 0 {
				s = "a"
			}
			b.WriteString(s)
		}
		return b.String()
	}
	for range 3000 {
		pattern := word(7, true)
		if strings.HasSuffix(pattern, "!") && !strings.HasSuffix(pattern, "!!") {
			pattern += "a"
		}
		m, err := compileLike(pattern, '!')
		if err != nil {
			continue // a trailing escape, rejected
		}
		re := likeRegexp(pattern, '!')
		for range 20 {
			s := word(9, false)
			if got, want := m.match([]byte(s)), re.MatchString(s); got != want {
				t.Fatalf("%q LIKE %q ESCAPE '!' = %v, want %v (kind %d)", s, pattern, got, want, m.kind)
			}
		}
	}
}

// TestLikeKernel runs every fast path and the general matcher over an array
// with nulls and a slice offset.
func TestLikeKernel(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	strs, _, err := array.FromJSON(mem, arrow.BinaryTypes.String, strings.NewReader(
		`["skip","apple","banana",null,"apricot","","grape","a_b","日本語"]`))
	if err != nil {
		t.Fatal(err)
	}
	defer strs.Release()
	sliced := array.NewSlice(strs, 1, int64(strs.Len()))
	defer sliced.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{sliced}, int64(sliced.Len()))
	defer rec.Release()
	for _, pattern := range []string{"%", "apple", "ap%", "%e", "%an%", "a%t", "a_b", "%p_", "_%", "日_語", "", "%!_%"} {
		c, err := Compile("s LIKE '"+pattern+"' ESCAPE '!'", schema)
		if err != nil {
			t.Fatal(err)
		}
		arr, err := c.Eval(context.Background(), mem, rec)
		if err != nil {
			t.Fatal(err)
		}
		re := likeRegexp(pattern, '!')
		b := arr.(*array.Boolean)
		s := sliced.(*array.String)
		for i := 0; i < b.Len(); i++ {
			if s.IsNull(i) != b.IsNull(i) {
				t.Errorf("LIKE %q row %d: null %v, want %v", pattern, i, b.IsNull(i), s.IsNull(i))
			}
			if s.IsValid(i) && b.Value(i) != re.MatchString(s.Value(i)) {
				t.Errorf("%q LIKE %q = %v", s.Value(i), pattern, b.Value(i))
			}
		}
		arr.Release()
	}
}
