//go:build !linux

package main

import (
	"fmt"
	"io"
	"runtime"
)

// cmdShm: shared segments need Linux.
func cmdShm(args []string, stdout, stderr io.Writer) error {
	return fmt.Errorf("shm: shared segments need Linux; this is %s/%s", runtime.GOOS, runtime.GOARCH)
}
