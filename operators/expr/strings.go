package expr

import (
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/internal/ascii"
)

// strFunc is one of the string functions.
type strFunc uint8

const (
	fnLower strFunc = iota
	fnUpper
	fnLength
)

var strFuncs = map[string]strFunc{"lower": fnLower, "upper": fnUpper, "length": fnLength}

func (f strFunc) dtype() arrow.DataType {
	if f == fnLength {
		return tInt64
	}
	return tString
}

// strNode is lower(x), upper(x) or length(x) on a string.
type strNode struct {
	fn strFunc
	x  node
}

func (n *strNode) dtype() arrow.DataType { return n.fn.dtype() }

func (n *strNode) eval(ev *evaluator) (value, error) {
	arr, err := ev.evalArray(n.x)
	if err != nil {
		return value{}, err
	}
	defer arr.Release()
	s := arr.(*array.String)
	if n.fn == fnLength {
		return value{arr: strLength(ev.mem, s)}, nil
	}
	out, err := changeCase(ev.mem, s, n.fn == fnUpper)
	return value{arr: out}, err
}

// stringParts returns the offsets (shifted by the array offset, so offs[i]
// is row i's start) and the whole data buffer of s.
func stringParts(s *array.String) ([]int32, []byte) {
	offs := s.ValueOffsets()
	var data []byte
	if b := s.Data().Buffers()[2]; b != nil {
		data = b.Bytes()
	}
	return offs, data
}

// strLength counts characters (code points; an invalid byte counts as one).
// The result shares s's validity bitmap when s has no offset.
func strLength(mem memory.Allocator, s *array.String) arrow.Array {
	rows := s.Len()
	offs, data := stringParts(s)
	out := newBuffer(mem, rows*8)
	res := arrow.Int64Traits.CastFromBytes(out.Bytes())[:rows]
	if ascii.Is(data[offs[0]:offs[rows]]) {
		for i := range res {
			res[i] = int64(offs[i+1] - offs[i])
		}
	} else {
		for i := range res {
			res[i] = int64(utf8.RuneCount(data[offs[i]:offs[i+1]]))
		}
	}
	return finishLike(mem, tInt64, s, out)
}

// finishLike builds a fixed-width result of s's length with s's nulls.
func finishLike(mem memory.Allocator, dt arrow.DataType, s arrow.Array, out *memory.Buffer) arrow.Array {
	rows := s.Len()
	var valid *memory.Buffer
	switch {
	case s.NullN() == 0:
	case s.Data().Offset() == 0:
		valid = s.Data().Buffers()[0]
		valid.Retain()
	default:
		valid = newValidity(mem, rows, s)
	}
	data := array.NewData(dt, rows, []*memory.Buffer{valid, out}, nil, s.NullN(), 0)
	if valid != nil {
		valid.Release()
	}
	out.Release()
	defer data.Release()
	return array.MakeFromData(data)
}

// changeCase maps s to lower or upper case. ASCII input (the common case)
// keeps its offsets and validity buffers, shared by reference, and only gets
// a new data buffer; other input is mapped rune by rune in two passes (size,
// then fill). Invalid UTF-8 bytes are kept as they are.
func changeCase(mem memory.Allocator, s *array.String, upper bool) (arrow.Array, error) {
	rows := s.Len()
	offs, data := stringParts(s)
	lo, hi := int(offs[0]), int(offs[rows])
	if ascii.Is(data[lo:hi]) {
		buf := newBuffer(mem, hi)
		dst := buf.Bytes()
		if upper {
			for i := lo; i < hi; i++ {
				c := data[i]
				if 'a' <= c && c <= 'z' {
					c -= 'a' - 'A'
				}
				dst[i] = c
			}
		} else {
			for i := lo; i < hi; i++ {
				c := data[i]
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				dst[i] = c
			}
		}
		d := s.Data()
		bufs := d.Buffers()
		out := array.NewData(tString, rows, []*memory.Buffer{bufs[0], bufs[1], buf}, nil, d.NullN(), d.Offset())
		buf.Release()
		defer out.Release()
		return array.MakeFromData(out), nil
	}
	mapRune := unicode.ToLower
	if upper {
		mapRune = unicode.ToUpper
	}
	total := 0
	for i := 0; i < rows; i++ {
		end := int(offs[i+1])
		for p := int(offs[i]); p < end; {
			r, n := utf8.DecodeRune(data[p:end])
			if r == utf8.RuneError && n <= 1 {
				total++
				p++
				continue
			}
			total += utf8.RuneLen(mapRune(r))
			p += n
		}
	}
	if total > math.MaxInt32 {
		return nil, fmt.Errorf("expr: case mapping of %d bytes is too large for a string array", total)
	}
	offBuf := newBuffer(mem, (rows+1)*4)
	nOffs := arrow.Int32Traits.CastFromBytes(offBuf.Bytes())[:rows+1]
	dataBuf := newBuffer(mem, total)
	dst := dataBuf.Bytes()
	pos := 0
	for i := 0; i < rows; i++ {
		nOffs[i] = int32(pos)
		end := int(offs[i+1])
		for p := int(offs[i]); p < end; {
			r, n := utf8.DecodeRune(data[p:end])
			if r == utf8.RuneError && n <= 1 {
				dst[pos] = data[p]
				pos++
				p++
				continue
			}
			pos += utf8.EncodeRune(dst[pos:], mapRune(r))
			p += n
		}
	}
	nOffs[rows] = int32(pos)
	var valid *memory.Buffer
	if s.NullN() > 0 {
		valid = newValidity(mem, rows, s)
	}
	return finish(tString, rows, valid, offBuf, dataBuf), nil
}
