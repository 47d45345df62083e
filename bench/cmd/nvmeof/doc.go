//go:build linux

// Command nvmeof measures zflow's NVMe/TCP initiator against zflow's target
// over loopback, with plain loopback TCP (iperf3, one stream) and a local
// fio on the namespace's backing file as baselines measured in the same
// run. Linux only (see main_linux.go for the method); make bench-nvmeof
// runs it.
package main
