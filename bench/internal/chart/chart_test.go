package chart

import (
	"image"
	"path/filepath"
	"testing"
)

func TestDrawAndWrite(t *testing.T) {
	c := &Bars{
		Title: "Title: abc XYZ 0123456789 (%/.,)", YLabel: "M rows/s",
		Series: []string{"loop", "pipeline"},
		Groups: []Group{{Label: "batch=1k", Values: []float64{1.5, 2.25}}, {Label: "batch=64k\nprocs=2", Values: []float64{12, 9}}},
		Format: "%.1f", Notes: []string{"a note"},
	}
	img := NewCanvas(640, 400)
	c.Draw(img, img.Bounds())
	inked := 0
	for y := 0; y < 400; y++ {
		for x := 0; x < 640; x++ {
			if r, _, _, _ := img.At(x, y).RGBA(); r != 0xFFFF {
				inked++
			}
		}
	}
	if inked < 2000 {
		t.Fatalf("only %d pixels drawn", inked)
	}
	path := filepath.Join(t.TempDir(), "c.png")
	if err := WritePNG(path, img.SubImage(image.Rect(0, 0, 640, 400))); err != nil {
		t.Fatal(err)
	}
}

func TestNiceScale(t *testing.T) {
	for _, tc := range []struct{ vmax, step, top float64 }{
		{0, 1, 1}, {8, 2, 10}, {1.1, 0.5, 1.5}, {430, 100, 500},
	} {
		step, top := niceScale(tc.vmax)
		if step != tc.step || top != tc.top {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", tc.vmax, step, top, tc.step, tc.top)
		}
	}
}
