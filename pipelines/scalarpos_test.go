package pipelines

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// valueNode parses src and returns the value of key "v" (at any depth of
// the first mapping chain) and the source.
func valueNode(t *testing.T, src string, env map[string]string) (*node, *source) {
	t.Helper()
	s := newSource([]byte(src))
	e := &errs{file: "t"}
	root := parseYAML(s, mapEnv(env), e)
	if len(e.list) > 0 || root == nil {
		t.Fatalf("parse: %v", e.sorted())
	}
	var find func(n *node) *node
	find = func(n *node) *node {
		for _, en := range n.entries {
			if en.key == "v" {
				return en.val
			}
			if r := find(en.val); r != nil {
				return r
			}
		}
		for _, it := range n.items {
			if r := find(it); r != nil {
				return r
			}
		}
		return nil
	}
	v := find(root)
	if v == nil {
		t.Fatal("no key v")
	}
	return v, s
}

// at returns the text of the file from p on.
func at(s *source, p filePos) string {
	i := s.index(p)
	if i < 0 {
		return ""
	}
	return string(s.text[i:])
}

func TestScalarPos(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		env       map[string]string
		target    string // a substring of the decoded value; its position is checked
		want      filePos
	}{
		{"plain", "v: qty > 100 AND sym = 'x'\n", nil, "sym", filePos{1, 18}},
		{"plain start", "v: qty > 100\n", nil, "qty", filePos{1, 4}},
		{"single", "v: 'qty > 1 AND sym = ''x'' AND zz'\n", nil, "zz", filePos{1, 33}},
		{"double", `v: "a \"b\" \t c\u00e9 zz"` + "\n", nil, "zz", filePos{1, 24}},
		{"double end", `v: "abc"` + "\n", nil, "", filePos{1, 8}},
		{"flow map", "x: {v: \"qty > 1 AND zz\", w: 1}\n", nil, "zz", filePos{1, 21}},
		{"flow seq", "x: [{v: 'a AND zz'}]\n", nil, "zz", filePos{1, 16}},
		{"plain multiline", "v: qty > 1\n  AND zz > 2\n", nil, "zz", filePos{2, 7}},
		{"double multiline", "v: \"qty > 1\n  AND zz > 2\"\n", nil, "zz", filePos{2, 7}},
		{"double continuation", "v: \"qty > 1 \\\n    AND zz\"\n", nil, "zz", filePos{2, 9}},
		{"literal", "v: |\n  qty > 1\n    AND zz > 2\n", nil, "zz", filePos{3, 9}},
		{"literal strip", "v: |-\n  qty > 1\n  AND zz\n", nil, "zz", filePos{3, 7}},
		{"folded", "x:\n  v: >\n    qty > 1\n    AND zz\n", nil, "zz", filePos{4, 9}},
		{"folded blank line", "v: >-\n  a\n\n  b zz\n", nil, "zz", filePos{4, 5}},
		{"literal comment header", "v: | # note\n  zz\n", nil, "zz", filePos{2, 3}},
		{"unicode", "v: 'é > ü AND zz'\n", nil, "zz", filePos{1, 15}},
		{"env before", "v: \"${A} AND zz\"\n", map[string]string{"A": "long value"}, "zz", filePos{1, 14}},
		{"env inside", "v: \"x AND ${A}\"\n", map[string]string{"A": "long zz"}, "zz", filePos{1, 11}},
		{"env escape", "v: '$$x AND zz'\n", nil, "zz", filePos{1, 13}},
		{"crlf", "w: 1\r\nv: \"a AND\r\n  zz\"\r\n", nil, "zz", filePos{3, 3}},
		{"tab before", "v:\t'a zz'\n", nil, "zz", filePos{1, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, s := valueNode(t, tc.src, tc.env)
			off := len(n.text)
			if tc.target != "" {
				off = strings.Index(n.text, tc.target)
				if off < 0 {
					t.Fatalf("%q not in decoded %q", tc.target, n.text)
				}
			}
			got := scalarPos(s, n, off, true)
			if got != tc.want {
				t.Errorf("offset %d of %q: got %d:%d (%q), want %d:%d (%q)", off, n.text, got.Line, got.Col,
					trunc(at(s, got)), tc.want.Line, tc.want.Col, trunc(at(s, tc.want)))
			}
		})
	}
}

func trunc(s string) string {
	if utf8.RuneCountInString(s) > 12 {
		return string([]rune(s)[:12])
	}
	return s
}

// TestScalarPosEveryOffset checks that every non-blank character of many
// scalars maps to the same character in the file.
func TestScalarPosEveryOffset(t *testing.T) {
	for _, src := range []string{
		"v: a b  c\n",
		"v: 'it''s a ''q'' x'\n",
		"v: \"esc \\\" \\\\ \\n \\x41 \\u00e9 \\U0001F600 end\"\n",
		"v: plain\n  folded\n\n  para\n",
		"v: |\n  line one\n    more\n\n  last\n",
		"v: >+\n  one\n  two\n\n  three\n\n",
		"k:\n  - v: \"two\n     lines\"\n",
	} {
		n, s := valueNode(t, src, nil)
		for off, r := range n.text {
			if isBlank(r) {
				continue
			}
			p := scalarPos(s, n, off, true)
			got, _ := utf8.DecodeRuneInString(at(s, p))
			if got != r && n.style != styleDouble {
				t.Errorf("%q: offset %d (%q) maps to %d:%d (%q)", src, off, r, p.Line, p.Col, got)
			}
			if n.style == styleDouble && got != r && got != '\\' {
				t.Errorf("%q: offset %d (%q) maps to %d:%d (%q)", src, off, r, p.Line, p.Col, got)
			}
		}
	}
}

// TestCRLF checks positions after CRLF and lone CR line breaks, including
// a CRLF inside a quoted scalar (which goccy would count as two lines).
func TestCRLF(t *testing.T) {
	for _, nl := range []string{"\r\n", "\r"} {
		src := strings.ReplaceAll("version: 1\nname: \"two\n  lines\"\nsources:\n  s: {type: csv, path: x}\noperators:\n  f: {type: filter, inputs: [s], where: 'qty AND nope'}\nsinks:\n  o: {type: stdout, inputs: [f], format: jsn}\n", "\n", nl)
		p, err := Parse([]byte(src), "c.yaml", testOpts(nil)...)
		want := `c.yaml:9:42: format: invalid value "jsn", did you mean "json"? (one of: table, csv, json)`
		if err == nil || err.Error() != want {
			t.Errorf("%q: got %v, want %s", nl, err, want)
		}
		src = strings.Replace(src, "jsn", "json", 1)
		if p, err = Parse([]byte(src), "c.yaml", testOpts(nil)...); err != nil {
			t.Fatal(err)
		}
		_, err = p.Compile()
		want = `c.yaml:7:50: unknown column "nope"`
		if err == nil || err.Error() != want {
			t.Errorf("%q: got %v, want %s", nl, err, want)
		}
	}
}

func TestScalarPosFallback(t *testing.T) {
	// A node whose text does not match the file falls back to its start.
	s := newSource([]byte("v: abc\n"))
	n := &node{kind: nodeScalar, typ: typeString, pos: filePos{1, 4}, text: "xyz", raw: "xyz"}
	if got := scalarPos(s, n, 1, true); got != (filePos{1, 4}) {
		t.Errorf("got %v", got)
	}
	if got := scalarPos(s, &node{kind: nodeMap, pos: filePos{2, 2}}, 5, true); got != (filePos{2, 2}) {
		t.Errorf("got %v", got)
	}
}
