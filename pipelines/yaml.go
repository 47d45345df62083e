package pipelines

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// The YAML layer: goccy/go-yaml parses the file into an AST with positions;
// this file turns that AST into a small tree of *node (scalars, mappings,
// sequences) with aliases resolved, merge keys applied, tags checked,
// duplicate keys reported and ${ENV} substituted, so the rest of the package
// never sees goccy's node zoo. A panic inside goccy is turned into a
// positioned error, never passed on.

type nodeKind uint8

const (
	nodeNull nodeKind = iota
	nodeScalar
	nodeMap
	nodeSeq
)

type scalarType uint8

const (
	typeString scalarType = iota
	typeInt
	typeFloat
	typeBool
)

type scalarStyle uint8

const (
	stylePlain scalarStyle = iota
	styleSingle
	styleDouble
	styleLiteral // |
	styleFolded  // >
)

// maxDepth bounds how deeply mappings and sequences may nest.
const maxDepth = 100

// node is one YAML value. Aliases share the node of their anchor.
type node struct {
	kind nodeKind
	pos  filePos // of the value: first character, opening quote or bracket, block indicator

	// Scalars.
	typ    scalarType
	text   string // decoded text of a string (after ${ENV}); source text of a number or bool
	raw    string // text of a string before ${ENV}
	env    *envSubst
	ival   int64
	uval   uint64 // set with isUint for integers above MaxInt64
	fval   float64
	bval   bool
	style  scalarStyle
	isUint bool
	bad    bool // an error was already reported here; decoding skips it quietly

	entries []entry // mappings, in file order (keys from << merges last)
	items   []*node // sequences
}

// entry is one key: value of a mapping.
type entry struct {
	key    string
	keyPos filePos
	val    *node
}

// lookup returns the entry for key, or nil.
func (n *node) lookup(key string) *entry {
	if n == nil {
		return nil
	}
	for i := range n.entries {
		if n.entries[i].key == key {
			return &n.entries[i]
		}
	}
	return nil
}

// describe names the kind of a value for "expected X, got Y" messages:
// its kind, and a scalar's text.
func (n *node) describe() string {
	k := n.kindName()
	switch {
	case n.kind != nodeScalar:
		return k
	case k != "string":
		return k + " " + n.text
	}
	t := n.text
	if utf8.RuneCountInString(t) > 40 {
		t = string([]rune(t)[:37]) + "..."
	}
	return fmt.Sprintf("string %q", t)
}

// kindName names a value's kind without its value.
func (n *node) kindName() string {
	switch n.kind {
	case nodeNull:
		return "null"
	case nodeMap:
		return "map"
	case nodeSeq:
		return "list"
	}
	switch n.typ {
	case typeInt:
		return "int"
	case typeFloat:
		return "float"
	case typeBool:
		return "bool"
	}
	return "string"
}

// parseYAML parses src into a tree. A syntax error stops it (returned as the
// only error); everything else is added to e and parsing goes on. It returns
// nil for a file with no document.
func parseYAML(src *source, lookup func(string) (string, bool), e *errs) (root *node) {
	f, err := goccyParse(src.text)
	if err != nil {
		e.list = append(e.list, syntaxError(e.file, err))
		return nil
	}
	var body ast.Node
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if _, ok := d.Body.(*ast.CommentGroupNode); ok {
			continue
		}
		if body != nil {
			at := src.skipBlank(tokenPos(d.Start))
			if !at.valid() {
				at = src.skipBlank(posOf(d.Body))
			}
			e.add(at, "a pipeline file holds one YAML document; remove the '---' and what follows it")
			break
		}
		body = d.Body
	}
	if body == nil {
		return nil
	}
	b := &builder{src: src, lookup: lookup, errs: e, anchors: map[string]*node{}}
	defer func() {
		if r := recover(); r != nil {
			e.add(filePos{1, 1}, "internal error while reading the YAML tree: %v (a bug in zflow; please report it)", r)
			root = nil
		}
	}()
	return b.convert(body, 0)
}

// goccyParse runs goccy's parser, turning a panic into an error.
func goccyParse(src []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, &panicError{msg: fmt.Sprint(r)}
		}
	}()
	f, err = parser.ParseBytes(src, 0, parser.AllowDuplicateMapKey())
	if err == nil && f == nil {
		err = &panicError{msg: "no result"}
	}
	return f, err
}

type panicError struct{ msg string }

func (p *panicError) Error() string {
	return "the YAML parser failed on this file (" + p.msg + "); check its syntax"
}

// syntaxError turns an error from goccy into a positioned *Error.
func syntaxError(file string, err error) *Error {
	out := &Error{File: file, Line: 1, Col: 1, Msg: "YAML syntax error: " + err.Error()}
	ye, ok := err.(yaml.Error)
	if !ok {
		return out
	}
	msg := ye.GetMessage()
	if tk := ye.GetToken(); tk != nil && tk.Position != nil && tk.Position.Line > 0 {
		out.Line, out.Col = tk.Position.Line, max(tk.Position.Column, 1)
	}
	if strings.Contains(msg, "found character '\t'") || strings.Contains(msg, `found character '\t'`) {
		msg = "tab character where YAML wants spaces (indent with spaces only)"
	}
	out.Msg = "YAML syntax error: " + msg
	return out
}

// posOf is the position of an AST node's token.
func posOf(n ast.Node) filePos {
	if n == nil {
		return filePos{}
	}
	return tokenPos(n.GetToken())
}

func tokenPos(tk *token.Token) filePos {
	if tk == nil || tk.Position == nil {
		return filePos{}
	}
	return filePos{tk.Position.Line, max(tk.Position.Column, 1)}
}

type builder struct {
	src     *source
	lookup  func(string) (string, bool)
	errs    *errs
	anchors map[string]*node
}

// convert turns an AST node into a *node. It never returns nil.
func (b *builder) convert(n ast.Node, depth int) *node {
	pos := b.pos(n)
	if depth > maxDepth {
		b.errs.add(pos, "values nest more than %d levels deep", maxDepth)
		return &node{kind: nodeNull, pos: pos, bad: true}
	}
	switch x := n.(type) {
	case nil:
		return &node{kind: nodeNull, pos: pos}
	case *ast.NullNode:
		return &node{kind: nodeNull, pos: pos}
	case *ast.BoolNode:
		return &node{kind: nodeScalar, typ: typeBool, pos: pos, bval: x.Value, text: tokenValue(x.Token, fmt.Sprint(x.Value))}
	case *ast.IntegerNode:
		out := &node{kind: nodeScalar, typ: typeInt, pos: pos, text: tokenValue(x.Token, fmt.Sprint(x.Value))}
		switch v := x.Value.(type) {
		case int64:
			out.ival = v
		case uint64:
			if v <= math.MaxInt64 {
				out.ival = int64(v)
			} else {
				out.uval, out.isUint = v, true
			}
		default:
			b.errs.add(pos, "invalid integer %s", out.text)
			out.bad = true
		}
		return out
	case *ast.FloatNode:
		return &node{kind: nodeScalar, typ: typeFloat, pos: pos, fval: x.Value, text: tokenValue(x.Token, fmt.Sprint(x.Value))}
	case *ast.InfinityNode:
		return &node{kind: nodeScalar, typ: typeFloat, pos: pos, fval: x.Value, text: tokenValue(x.Token, "inf")}
	case *ast.NanNode:
		return &node{kind: nodeScalar, typ: typeFloat, pos: pos, fval: math.NaN(), text: tokenValue(x.Token, "nan")}
	case *ast.StringNode:
		style := stylePlain
		if x.Token != nil {
			switch x.Token.Type {
			case token.SingleQuoteType:
				style = styleSingle
			case token.DoubleQuoteType:
				style = styleDouble
			}
		}
		if style == stylePlain && yamlFloat.MatchString(x.Value) {
			// YAML 1.2 reads 1e6 as a float; goccy reads it as a string.
			if f, err := strconv.ParseFloat(x.Value, 64); err == nil {
				return &node{kind: nodeScalar, typ: typeFloat, pos: pos, fval: f, text: x.Value}
			}
		}
		return b.stringNode(x.Value, style, pos)
	case *ast.LiteralNode:
		style := styleLiteral
		if x.Start != nil && strings.HasPrefix(x.Start.Value, ">") {
			style = styleFolded
		}
		val := ""
		if x.Value != nil {
			val = x.Value.Value
		}
		return b.stringNode(val, style, b.src.skipBlank(tokenPos(x.Start)))
	case *ast.MappingNode:
		start := pos
		if !x.IsFlowStyle && len(x.Values) > 0 && x.Values[0] != nil && x.Values[0].Key != nil {
			start = b.pos(x.Values[0].Key) // a block mapping starts at its first key
		}
		return b.mapping(x.Values, start, depth)
	case *ast.MappingValueNode:
		return b.mapping([]*ast.MappingValueNode{x}, b.pos(x.Key), depth)
	case *ast.SequenceNode:
		out := &node{kind: nodeSeq, pos: pos}
		for _, v := range x.Values {
			out.items = append(out.items, b.convert(v, depth+1))
		}
		return out
	case *ast.AnchorNode:
		v := b.convert(x.Value, depth+1)
		if name := anchorName(x.Name); name != "" {
			b.anchors[name] = v
		}
		return v
	case *ast.AliasNode:
		name := anchorName(x.Value)
		if v, ok := b.anchors[name]; ok {
			return v
		}
		b.errs.add(pos, "alias *%s refers to no anchor &%s defined before it", name, name)
		return &node{kind: nodeNull, pos: pos, bad: true}
	case *ast.TagNode:
		tag := ""
		if x.Start != nil {
			tag = x.Start.Value
		}
		v := b.convert(x.Value, depth+1)
		switch tag {
		case "!!str", "tag:yaml.org,2002:str":
			if v.kind == nodeScalar && v.typ != typeString {
				return b.stringNode(v.text, stylePlain, v.pos)
			}
			if v.kind == nodeNull {
				return b.stringNode("", stylePlain, v.pos)
			}
		case "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq":
		default:
			b.errs.add(pos, "unsupported YAML tag %s (zflow understands only the standard tags like !!str)", tag)
			v.bad = true
		}
		return v
	case *ast.DocumentNode:
		return b.convert(x.Body, depth)
	case *ast.CommentGroupNode, *ast.CommentNode:
		return &node{kind: nodeNull, pos: pos}
	}
	b.errs.add(pos, "unexpected YAML %s here", n.Type())
	return &node{kind: nodeNull, pos: pos, bad: true}
}

// pos is the position of an AST node, moved past blanks goccy counts in.
func (b *builder) pos(n ast.Node) filePos { return b.src.skipBlank(posOf(n)) }

func tokenValue(tk *token.Token, def string) string {
	if tk != nil && tk.Value != "" {
		return tk.Value
	}
	return def
}

func anchorName(n ast.Node) string {
	if n == nil {
		return ""
	}
	if s, ok := n.(*ast.StringNode); ok {
		return s.Value
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}

// stringNode makes a string scalar and substitutes ${ENV} in it.
func (b *builder) stringNode(s string, style scalarStyle, pos filePos) *node {
	out := &node{kind: nodeScalar, typ: typeString, pos: pos, text: s, raw: s, style: style}
	text, sub, errs := expandEnv(s, b.lookup)
	if len(errs) > 0 {
		for _, e := range errs {
			b.errs.add(scalarPos(b.src, out, e.off, false), "%s", e.msg)
		}
		out.bad = true
		return out
	}
	out.text, out.env = text, sub
	return out
}

// mapping converts the key: value pairs of a mapping, reporting duplicate
// and non-scalar keys and applying << merges.
func (b *builder) mapping(values []*ast.MappingValueNode, pos filePos, depth int) *node {
	out := &node{kind: nodeMap, pos: pos}
	index := make(map[string]int, len(values))
	var merges []*node
	for _, mv := range values {
		if mv == nil {
			continue
		}
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			merges = append(merges, b.convert(mv.Value, depth+1))
			continue
		}
		key, keyPos, ok := b.key(mv.Key)
		val := b.convert(mv.Value, depth+1)
		if !ok {
			continue
		}
		if _, null := mv.Value.(*ast.NullNode); null && !b.explicitNull(val.pos) {
			val.pos = keyPos // "key:" with nothing after it
		}
		if i, dup := index[key]; dup {
			prev := out.entries[i].keyPos
			b.errs.add(keyPos, "duplicate key %q (first at line %d, column %d)", key, prev.Line, prev.Col)
			continue
		}
		index[key] = len(out.entries)
		out.entries = append(out.entries, entry{key: key, keyPos: keyPos, val: val})
	}
	for _, m := range merges {
		var srcs []*node
		switch m.kind {
		case nodeMap:
			srcs = []*node{m}
		case nodeSeq:
			srcs = m.items
		}
		if len(srcs) == 0 && !m.bad {
			b.errs.add(m.pos, "the value of a << merge key must be a map or a list of maps, got %s", m.kindName())
		}
		for _, s := range srcs {
			if s.kind != nodeMap {
				if !s.bad {
					b.errs.add(s.pos, "the value of a << merge key must be a map or a list of maps, got %s", s.kindName())
				}
				continue
			}
			for _, en := range s.entries {
				if _, ok := index[en.key]; !ok {
					index[en.key] = len(out.entries)
					out.entries = append(out.entries, en)
				}
			}
		}
	}
	return out
}

// explicitNull tells whether a null is written (null, ~) at p, rather than
// implied by an empty value.
func (b *builder) explicitNull(p filePos) bool {
	i := b.src.index(p)
	if i < 0 || i >= len(b.src.text) {
		return false
	}
	rest := b.src.text[i:]
	for _, w := range []string{"~", "null", "Null", "NULL"} {
		if bytes.HasPrefix(rest, []byte(w)) {
			return true
		}
	}
	return false
}

// yamlFloat is the YAML 1.2 core schema's float syntax (without .inf and .nan).
var yamlFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// key returns the text of a mapping key. Keys must be scalars.
func (b *builder) key(k ast.MapKeyNode) (string, filePos, bool) {
	pos := b.pos(k)
	switch x := k.(type) {
	case *ast.StringNode:
		return x.Value, pos, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return tokenValue(x.GetToken(), ""), pos, true
	case *ast.NullNode:
		return "null", pos, true
	case *ast.MappingKeyNode:
		if x.Value != nil {
			if s, ok := x.Value.(ast.MapKeyNode); ok {
				if _, complex := s.(*ast.MappingKeyNode); !complex {
					return b.key(s)
				}
			}
		}
	case *ast.AnchorNode, *ast.AliasNode, *ast.TagNode:
		v := b.convert(x, 1)
		if v.kind == nodeScalar {
			return v.text, pos, true
		}
	}
	b.errs.add(pos, "a key must be a plain string")
	return "", pos, false
}
