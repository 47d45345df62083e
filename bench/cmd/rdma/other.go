//go:build !linux

// Command rdma needs Linux (see main.go).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "rdma bench: needs Linux")
	os.Exit(1)
}
