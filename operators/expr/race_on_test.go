//go:build race

package expr

// raceEnabled: the race detector makes sync.Pool drop what it is given, so
// code that reuses pooled state (Go's regexp machines) allocates.
const raceEnabled = true
