package chart

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strings"
)

// Palette holds the series colours, in order.
var Palette = []color.RGBA{
	{0x4C, 0x72, 0xB0, 0xFF}, // blue
	{0xDD, 0x84, 0x52, 0xFF}, // orange
	{0x55, 0xA8, 0x68, 0xFF}, // green
	{0xC4, 0x4E, 0x52, 0xFF}, // red
	{0x81, 0x72, 0xB3, 0xFF}, // purple
}

var (
	black = color.RGBA{0x20, 0x20, 0x20, 0xFF}
	grey  = color.RGBA{0x70, 0x70, 0x70, 0xFF}
	grid  = color.RGBA{0xE4, 0xE4, 0xE4, 0xFF}
	white = color.RGBA{0xFF, 0xFF, 0xFF, 0xFF}
)

// Group is one cluster of bars: one value per series, and a label under it
// (lines separated by "\n").
type Group struct {
	Label  string
	Values []float64
}

// Bars is a grouped bar chart.
type Bars struct {
	Title  string
	YLabel string   // the value axis, written vertically
	Series []string // legend, one per value of each group
	Groups []Group
	// Format renders a value above its bar ("" means no value labels).
	Format string
	// Notes are lines written under the chart, small.
	Notes []string
}

// NewCanvas returns a white image of w×h pixels.
func NewCanvas(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)
	return img
}

// WritePNG writes img to path.
func WritePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("chart: encode %s: %w", path, err)
	}
	return f.Close()
}

// Draw draws c into the rectangle r of img.
func (c *Bars) Draw(img *image.RGBA, r image.Rectangle) {
	const s = 2 // text scale: 12×20-pixel cells
	top := r.Min.Y + 10
	Text(img, r.Min.X+(r.Dx()-TextWidth(c.Title, s))/2, top, c.Title, s, black)
	top += glyphH*s + 6
	// Legend, centred under the title.
	legendW := 0
	for _, name := range c.Series {
		legendW += 14 + 6 + TextWidth(name, 1*s) + 20
	}
	x := r.Min.X + (r.Dx()-legendW)/2
	for i, name := range c.Series {
		fill(img, image.Rect(x, top+2, x+14, top+16), Palette[i%len(Palette)])
		x += 20
		Text(img, x, top, name, s, black)
		x += TextWidth(name, s) + 20
	}
	top += glyphH*s + 10

	maxLines := 1
	for _, g := range c.Groups {
		maxLines = max(maxLines, strings.Count(g.Label, "\n")+1)
	}
	bottom := r.Max.Y - 10 - maxLines*glyphH*s - len(c.Notes)*glyphH - 8
	vmax := 0.0
	for _, g := range c.Groups {
		for _, v := range g.Values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				vmax = max(vmax, v)
			}
		}
	}
	step, top1 := niceScale(vmax)
	tickW := 0
	for t := 0.0; t <= top1+step/2; t += step {
		tickW = max(tickW, TextWidth(tickLabel(t, step), s))
	}
	left := r.Min.X + 10 + glyphH*s + 6 + tickW + 8
	right := r.Max.X - 16
	plotTop := top + 8
	// Y label, vertical, centred on the plot.
	TextUp(img, r.Min.X+10, (plotTop+bottom)/2+TextWidth(c.YLabel, s)/2, c.YLabel, s, black)
	yOf := func(v float64) int {
		return bottom - int(math.Round(v/top1*float64(bottom-plotTop)))
	}
	for t := 0.0; t <= top1+step/2; t += step {
		y := yOf(t)
		fill(img, image.Rect(left, y, right, y+1), grid)
		lbl := tickLabel(t, step)
		Text(img, left-8-TextWidth(lbl, s), y-glyphH*s/2+2, lbl, s, grey)
	}
	// Bars.
	n := max(len(c.Groups), 1)
	groupW := (right - left) / n
	nb := max(len(c.Series), 1)
	barW := min(140, max(4, (groupW-24)/nb))
	// One scale for every value label: the large one if all of them fit
	// their bars.
	ls := s
	for _, g := range c.Groups {
		for _, v := range g.Values {
			if c.Format != "" && TextWidth(fmt.Sprintf(c.Format, v), s) > barW-2 {
				ls = 1
			}
		}
	}
	for gi, g := range c.Groups {
		gx := left + gi*groupW + (groupW-barW*nb)/2
		for si, v := range g.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				continue
			}
			x0 := gx + si*barW
			y := yOf(v)
			fill(img, image.Rect(x0+1, y, x0+barW-1, bottom), Palette[si%len(Palette)])
			if c.Format != "" {
				lbl := fmt.Sprintf(c.Format, v)
				Text(img, x0+(barW-TextWidth(lbl, ls))/2, y-glyphH*ls-1, lbl, ls, black)
			}
		}
		for li, line := range strings.Split(g.Label, "\n") {
			cx := left + gi*groupW + groupW/2
			Text(img, cx-TextWidth(line, s)/2, bottom+6+li*glyphH*s, line, s, black)
		}
	}
	// Axes.
	fill(img, image.Rect(left, plotTop, left+1, bottom+1), black)
	fill(img, image.Rect(left, bottom, right, bottom+1), black)
	ny := bottom + 6 + maxLines*glyphH*s + 4
	for _, note := range c.Notes {
		Text(img, r.Min.X+10, ny, note, 1, grey)
		ny += glyphH
	}
}

// niceScale returns a tick step (1, 2 or 5 × 10^k) and the axis top (a
// multiple of it) for values up to vmax, with headroom for value labels.
func niceScale(vmax float64) (step, top float64) {
	if vmax <= 0 {
		return 1, 1
	}
	raw := vmax * 1.12 / 5
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	switch m := raw / p; {
	case m <= 1:
		step = p
	case m <= 2:
		step = 2 * p
	case m <= 5:
		step = 5 * p
	default:
		step = 10 * p
	}
	return step, math.Ceil(vmax*1.12/step) * step
}

func tickLabel(v, step float64) string {
	if step >= 1 {
		return fmt.Sprintf("%.0f", v)
	}
	d := int(math.Ceil(-math.Log10(step)))
	return fmt.Sprintf("%.*f", d, v)
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	draw.Draw(img, r.Intersect(img.Bounds()), &image.Uniform{c}, image.Point{}, draw.Src)
}

// TextWidth is the width in pixels of s drawn at scale.
func TextWidth(s string, scale int) int { return len(s) * glyphW * scale }

// Text draws s with its top-left corner at (x, y); each font pixel is a
// scale×scale square. Bytes outside printable ASCII draw as '?'.
func Text(img *image.RGBA, x, y int, s string, scale int, c color.RGBA) {
	for i := 0; i < len(s); i++ {
		g := glyph(s[i])
		for col := 0; col < 5; col++ {
			bits := g[col]
			for row := 0; row < 8; row++ {
				if bits&(1<<row) != 0 {
					px, py := x+(i*glyphW+col)*scale, y+row*scale
					fill(img, image.Rect(px, py, px+scale, py+scale), c)
				}
			}
		}
	}
}

// TextUp draws s rotated a quarter turn counter-clockwise, reading upwards,
// its baseline start at (x, y) (the bottom-left corner of the text).
func TextUp(img *image.RGBA, x, y int, s string, scale int, c color.RGBA) {
	for i := 0; i < len(s); i++ {
		g := glyph(s[i])
		for col := 0; col < 5; col++ {
			bits := g[col]
			for row := 0; row < 8; row++ {
				if bits&(1<<row) != 0 {
					px, py := x+row*scale, y-(i*glyphW+col+1)*scale
					fill(img, image.Rect(px, py, px+scale, py+scale), c)
				}
			}
		}
	}
}

func glyph(b byte) [5]byte {
	if b < 0x20 || b > 0x7E {
		b = '?'
	}
	return glyphs[b-0x20]
}
