package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/zflowdev/zflow/topology"
)

// cmdTopology implements `zflow topology [--json] [--check] [--sys DIR
// --proc DIR]`: the machine as zflow sees it (NUMA nodes, memory-only CXL
// nodes, hugepages, DAX, NVMe, NICs), or with --check what is missing for
// hugepage- and NUMA-backed arenas and the commands that fix it. `zflow
// doctor` is `topology --check`. --sys and --proc read another tree (a copy
// of a machine's sysfs and procfs) instead of this machine's.
func cmdTopology(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("topology", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	check := fs.Bool("check", false, "print what is missing, with the commands that fix it (zflow doctor)")
	labels := fs.Bool("labels", false, "print the machine's facts as Kubernetes node labels (key=value lines), for kubelet --node-labels or kubectl label")
	root := topology.Host()
	fs.StringVar(&root.Sys, "sys", root.Sys, "where sysfs is mounted")
	fs.StringVar(&root.Proc, "proc", root.Proc, "where procfs is mounted")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("topology: unexpected argument %q", rest[0])}
	}
	m, err := topology.Read(root)
	if err != nil {
		return err
	}
	switch {
	case *labels:
		return m.WriteLabels(stdout)
	case *check && *asJSON:
		b, err := json.MarshalIndent(m.Check(), "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	case *check:
		return m.WriteCheck(stdout)
	case *asJSON:
		return m.WriteJSON(stdout)
	}
	return m.WriteText(stdout)
}
