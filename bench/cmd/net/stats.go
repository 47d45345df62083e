//go:build linux

package main

import (
	"cmp"
	"slices"
)

// percentile returns the p-th percentile (0 < p ≤ 100) of v by the
// nearest-rank method: the smallest value with at least p % of the values
// at or below it. v is sorted in place; an empty v gives 0.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.SortFunc(v, cmp.Compare)
	rank := int(p/100*float64(len(v)) + 0.999999999)
	return v[min(max(rank, 1), len(v))-1]
}

// perGB is CPU seconds per GB (10⁹ bytes) moved; 0 when nothing moved.
func perGB(cpuSeconds float64, bytes int64) float64 {
	if bytes <= 0 {
		return 0
	}
	return cpuSeconds / (float64(bytes) / 1e9)
}
