// Package chart draws the simple bar charts of bench/results as PNG files
// with the standard library only: grouped bars, a value axis with ticks and
// a grid, group labels, a legend, and text from a built-in 5×8 bitmap font
// (font.go), so that no module beyond zflow's own is needed.
package chart
