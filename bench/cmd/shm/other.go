//go:build !linux

// Command shm measures shared segments, which need Linux.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "shm: shared segments need Linux")
	os.Exit(1)
}
