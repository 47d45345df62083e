//go:build linux

// Command pause is the sandbox process of the cluster tests' pods (the
// part Kubernetes' own pause image plays): it holds the pod's namespaces,
// reaps the orphans handed to it as PID 1, and exits 0 on SIGTERM or
// SIGINT. Built static and put in an image by mkimage, since the test
// cluster has no registry to pull one from.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
