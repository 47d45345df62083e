package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/zflowdev/zflow/cxl"
	"github.com/zflowdev/zflow/engine"
)

const shmUsage = `zflow shm ls [DIR]                list the shared segments in DIR (default /dev/shm; /dev
                                  for those on device-DAX devices)
zflow shm inspect [--json] PATH   a segment's header, processes, channels and usage
zflow shm gc [--remove] PATH      reclaim what dead processes held; --remove deletes the
                                  segment's file when nobody is attached and nothing is pending`

// cmdShm is `zflow shm`: list, inspect and collect shared segments.
func cmdShm(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"shm: which? ls, inspect or gc\n" + shmUsage}
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "ls":
		dir := "/dev/shm"
		if len(rest) > 1 {
			return usageError{"shm ls: at most one directory"}
		}
		if len(rest) == 1 {
			dir = rest[0]
		}
		return shmList(dir, stdout)
	case "inspect":
		fs := newFlags("shm inspect", stderr)
		asJSON := fs.Bool("json", false, "print the report as JSON")
		paths, err := parseFlags(fs, rest)
		if err != nil {
			return err
		}
		if len(paths) != 1 {
			return usageError{"shm inspect: one segment path"}
		}
		return shmInspect(paths[0], *asJSON, stdout)
	case "gc":
		fs := newFlags("shm gc", stderr)
		remove := fs.Bool("remove", false, "delete the segment's file when nobody is attached and no batch is pending")
		paths, err := parseFlags(fs, rest)
		if err != nil {
			return err
		}
		if len(paths) != 1 {
			return usageError{"shm gc: one segment path"}
		}
		return shmGC(paths[0], *remove, stdout)
	}
	return usageError{fmt.Sprintf("shm: unknown subcommand %q (known: ls, inspect, gc)", args[0])}
}

// openForTool opens a segment without making it, waiting for nothing.
func openForTool(path string) (*cxl.Segment, error) {
	return cxl.Open(path, cxl.Options{Shared: true})
}

func shmList(dir string, w io.Writer) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("shm ls: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "segment\tbacking\tsize\tused\tprocesses\tdead\tchannels\t")
	n := 0
	for _, e := range ents {
		// Files, and device-DAX devices (daxX.Y) for DIR /dev.
		dax := e.Type()&fs.ModeCharDevice != 0 && strings.HasPrefix(e.Name(), "dax")
		if !e.Type().IsRegular() && !dax {
			continue
		}
		p := filepath.Join(dir, e.Name())
		s, err := openForTool(p)
		if errors.Is(err, cxl.ErrNotSegment) {
			continue
		}
		if err != nil {
			fmt.Fprintf(tw, "%s\t%s\t\t\t\t\t\t\n", p, "error: "+err.Error())
			continue
		}
		r, err := s.Inspect()
		s.Close()
		if err != nil {
			fmt.Fprintf(tw, "%s\t%s\t\t\t\t\t\t\n", p, "error: "+err.Error())
			continue
		}
		alive, dead := 0, 0
		for _, pt := range r.Participants {
			if pt.Alive {
				alive++
			} else {
				dead++
			}
		}
		n++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t\n", p, r.Backing, engine.HumanBytes(r.Size), engine.HumanBytes(r.Used()), alive, dead, len(r.Channels))
	}
	tw.Flush()
	if n == 0 {
		fmt.Fprintf(w, "no zflow segments in %s\n", dir)
	}
	return nil
}

func shmInspect(path string, asJSON bool, w io.Writer) error {
	s, err := openForTool(path)
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := s.Inspect()
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(w, "segment %s: %s, %s (align %s), generation %d, made %s by pid %d\n",
		r.Path, r.Backing, engine.HumanBytes(r.Size), engine.HumanBytes(r.Align), r.Generation, r.Created.Format("2006-01-02 15:04:05"), r.CreatorPID)
	fmt.Fprintf(w, "extents: %d of %s, %d free, %s in use", r.Extents, engine.HumanBytes(r.ExtentSize), r.FreeExtents, engine.HumanBytes(r.Used()))
	if len(r.ByOwner) > 0 {
		owners := make([]string, 0, len(r.ByOwner))
		for o, n := range r.ByOwner {
			owners = append(owners, fmt.Sprintf("%s: %d", o, n))
		}
		sort.Strings(owners)
		fmt.Fprintf(w, " (%s)", strings.Join(owners, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "processes: %d\n", len(r.Participants))
	for _, p := range r.Participants {
		state := "alive"
		if !p.Alive {
			state = "DEAD (zflow shm gc reclaims it)"
		}
		fmt.Fprintf(w, "  slot %d: %s %q pid %d, attached %s, %s\n", p.Slot, p.Role, p.Name, p.PID, p.Attached.Format("15:04:05"), state)
	}
	fmt.Fprintf(w, "channels: %d\n", len(r.Channels))
	for _, c := range r.Channels {
		state := "open"
		switch {
		case c.Failed:
			state = "producer failed"
		case c.Ended:
			state = "ended"
		}
		prod := "none"
		if c.Producer >= 0 {
			prod = fmt.Sprintf("slot %d", c.Producer)
		}
		fmt.Fprintf(w, "  %s: %s, producer %s, %d published, capacity %d\n", c.Name, state, prod, c.Published, c.Capacity)
		for k, cs := range c.Consumers {
			holder := "free"
			if cs.Slot >= 0 {
				holder = fmt.Sprintf("slot %d", cs.Slot)
			}
			line := fmt.Sprintf("    consumer %d: %s, %d delivered, %d acknowledged, %d takeovers", k, holder, cs.Delivered, cs.Acked, cs.Takeovers)
			if cs.Err != "" {
				line += ", " + cs.Err
			}
			fmt.Fprintln(w, line)
		}
	}
	return nil
}

func shmGC(path string, remove bool, w io.Writer) error {
	s, err := openForTool(path)
	if err != nil {
		return err
	}
	res, err := s.Collect(remove)
	s.Close()
	if err != nil {
		return err
	}
	for _, p := range res.Reclaimed {
		fmt.Fprintf(w, "reclaimed slot %d: %s %q, pid %d (dead)\n", p.Slot, p.Role, p.Name, p.PID)
	}
	fmt.Fprintf(w, "%s: %d extents freed; %s\n", path, res.Freed, res.Why)
	return nil
}
