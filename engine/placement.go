package engine

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"sync"

	"github.com/zflowdev/zflow/topology"
)

// pinner pins operator instances' threads near their data when
// Settings.Pin asks: to the node the instance's memory is bound to, else
// the node nearest the operator's path parameter (the NVMe device, NIC or
// DAX device behind it). Where no node can be chosen, or pinning fails, the
// instance runs unpinned and the reason is logged once per node.
type pinner struct {
	m      *topology.Machine
	target []int    // by plan node index: -1 to pick from the path
	why    []string // by plan node index: where target comes from
	paths  []string // by plan node index
	log    *slog.Logger
	name   string
	once   sync.Map
}

// newPinner returns nil when the run does not pin.
func newPinner(p *Plan, mem *runMemory, log *slog.Logger) *pinner {
	if !p.Settings.Pin {
		return nil
	}
	m, err := topology.Read(topology.Host())
	if err != nil {
		log.Warn("pin: cannot read the topology, operators run unpinned: "+err.Error(), "pipeline", p.Name)
		return nil
	}
	pn := &pinner{m: m, log: log, name: p.Name, target: make([]int, len(p.nodes)),
		why: make([]string, len(p.nodes)), paths: make([]string, len(p.nodes))}
	for i, n := range p.nodes {
		pn.target[i] = -1
		if u := mem.node[i]; u.cfg.Bind {
			pn.target[i], pn.why[i] = u.cfg.Node, "settings.memory.node"
			if u.own {
				pn.why[i] = "its memory.node"
			}
		}
		pn.paths[i] = configPath(n.Config)
	}
	return pn
}

// pin runs first thing in an instance's goroutine.
func (pn *pinner) pin(i int, n *planNode) {
	if pn == nil {
		return
	}
	target, why := pn.target[i], pn.why[i]
	if target < 0 {
		target, why = pn.m.Pick(pn.paths[i])
	}
	if target < 0 {
		pn.logOnce(n.ID, slog.LevelWarn, fmt.Sprintf("pin: operator %q runs unpinned: %s", n.ID, why))
		return
	}
	// The goroutine keeps this thread to its end; Go then ends the thread,
	// so the affinity never leaks to other goroutines.
	runtime.LockOSThread()
	if err := pn.m.PinCurrentThreadToNode(target); err != nil {
		pn.logOnce(n.ID, slog.LevelWarn, fmt.Sprintf("pin: operator %q runs unpinned: %v", n.ID, err))
		return
	}
	pn.logOnce(n.ID, slog.LevelInfo, fmt.Sprintf("pin: operator %q on node %d (%s)", n.ID, target, why))
}

func (pn *pinner) logOnce(key string, level slog.Level, msg string) {
	if _, seen := pn.once.LoadOrStore(key, true); !seen {
		pn.log.Log(context.Background(), level, msg, "pipeline", pn.name)
	}
}

// configPath is the first path of an operator's config (see configPaths),
// or "".
func configPath(cfg any) string {
	if ps := configPaths(cfg); len(ps) > 0 {
		return ps[0]
	}
	return ""
}

// configPaths are the paths an operator's config names: what its
// PathsConfig method returns, else its parameter tagged `zflow:"path"` (a
// string, or a list of strings).
func configPaths(cfg any) []string {
	if pc, ok := cfg.(PathsConfig); ok {
		return pc.Paths()
	}
	v := reflect.ValueOf(cfg)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if f.Tag.Get("zflow") != "path" {
			continue
		}
		switch fv := v.Field(i); {
		case f.Type.Kind() == reflect.String:
			if fv.String() == "" {
				return nil
			}
			return []string{fv.String()}
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
			out := make([]string, fv.Len())
			for j := range out {
				out[j] = fv.Index(j).String()
			}
			return out
		}
	}
	return nil
}
