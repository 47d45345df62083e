package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/nvmeof/nvme"
	"github.com/zflowdev/zflow/nvmeof/target"
)

// serveConfig is what `zflow nvmeof serve` serves, from flags or from a
// YAML file:
//
//	subsystems:
//	  - nqn: nqn.2024-01.dev.zflow:data
//	    namespaces: [ram:256MiB, "file:/var/lib/zflow/ns1.img,size=1GiB"]
//	    allow_hosts: [nqn.2014-08.org.nvmexpress:uuid:...]   # empty: any host
//	ports:
//	  - listen: 127.0.0.1:4420
//	  - {listen: 127.0.0.1:8009, discovery: true}            # discovery only
type serveConfig struct {
	Subsystems []subsystemConfig `yaml:"subsystems"`
	Ports      []portConfig      `yaml:"ports"`
}

type subsystemConfig struct {
	NQN        string   `yaml:"nqn"`
	Namespaces []string `yaml:"namespaces"`
	AllowHosts []string `yaml:"allow_hosts"`
}

type portConfig struct {
	Listen    string `yaml:"listen"`
	Discovery bool   `yaml:"discovery"`
}

// nsSpec is a namespace as written: ram:SIZE or file:PATH[,size=SIZE].
type nsSpec struct {
	ram  bool
	path string
	size int64 // 0 for a file: its current size
}

func parseNamespace(s string) (nsSpec, error) {
	kind, rest, ok := strings.Cut(s, ":")
	switch {
	case ok && kind == "ram":
		n, err := engine.ParseSize(rest)
		if err != nil || n <= 0 || n%4096 != 0 {
			return nsSpec{}, fmt.Errorf("namespace %q: want ram:SIZE, a positive multiple of 4KiB", s)
		}
		return nsSpec{ram: true, size: int64(n)}, nil
	case ok && kind == "file" && rest != "":
		path, opt, hasOpt := strings.Cut(rest, ",")
		sp := nsSpec{path: path}
		if hasOpt {
			v, found := strings.CutPrefix(opt, "size=")
			n, err := engine.ParseSize(v)
			if !found || err != nil || n <= 0 || n%512 != 0 {
				return nsSpec{}, fmt.Errorf("namespace %q: want file:PATH or file:PATH,size=SIZE (a positive multiple of 512)", s)
			}
			sp.size = int64(n)
		}
		if path == "" {
			return nsSpec{}, fmt.Errorf("namespace %q: no path", s)
		}
		return sp, nil
	}
	return nsSpec{}, fmt.Errorf("namespace %q: want ram:SIZE or file:PATH[,size=SIZE]", s)
}

func (s nsSpec) String() string {
	if s.ram {
		return "ram " + engine.Size(s.size).String()
	}
	return "file " + s.path + " " + engine.Size(s.size).String()
}

// check finds what is wrong with c; each error comes with the YAML path of
// the value it is about ("$" for the whole file).
func (c *serveConfig) check() (path string, err error) {
	if len(c.Subsystems) == 0 {
		return "$", errors.New("no subsystems")
	}
	if len(c.Ports) == 0 {
		return "$", errors.New("no ports")
	}
	nqns := map[string]bool{}
	for i, s := range c.Subsystems {
		at := fmt.Sprintf("$.subsystems[%d]", i)
		switch {
		case s.NQN == "" || len(s.NQN) > nvme.MaxNQNLength || !strings.HasPrefix(s.NQN, "nqn."):
			return at + ".nqn", fmt.Errorf("subsystem NQN %q: want nqn.… of at most %d bytes", s.NQN, nvme.MaxNQNLength)
		case s.NQN == nvme.DiscoveryNQN:
			return at + ".nqn", fmt.Errorf("%s is the discovery subsystem's NQN", s.NQN)
		case nqns[s.NQN]:
			return at + ".nqn", fmt.Errorf("subsystem %s twice", s.NQN)
		case len(s.Namespaces) == 0:
			return at, fmt.Errorf("subsystem %s has no namespaces", s.NQN)
		}
		nqns[s.NQN] = true
		for j, ns := range s.Namespaces {
			if _, err := parseNamespace(ns); err != nil {
				return fmt.Sprintf("%s.namespaces[%d]", at, j), err
			}
		}
	}
	for i, p := range c.Ports {
		if _, _, err := net.SplitHostPort(p.Listen); err != nil {
			return fmt.Sprintf("$.ports[%d].listen", i), fmt.Errorf("listen address %q: want HOST:PORT", p.Listen)
		}
	}
	return "", nil
}

// parseServeConfig reads a serve config file; errors say file:line:col.
// goccy/go-yaml panics on some malformed input (FuzzServeConfig found a
// tag on a sequence); that becomes an error too.
func parseServeConfig(name string, src []byte) (c *serveConfig, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("%s:1:1: the YAML parser failed on this file (%v); check its syntax", name, r)
		}
	}()
	return parseServeConfigYAML(name, src)
}

func parseServeConfigYAML(name string, src []byte) (*serveConfig, error) {
	var c serveConfig
	if err := yaml.UnmarshalWithOptions(src, &c, yaml.Strict()); err != nil {
		line, col, msg := 1, 1, err.Error()
		var ye yaml.Error
		if errors.As(err, &ye) {
			msg = ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil && tk.Position.Line > 0 {
				line, col = tk.Position.Line, max(tk.Position.Column, 1)
			}
		}
		return nil, fmt.Errorf("%s:%d:%d: %s", name, line, col, msg)
	}
	path, err := c.check()
	if err == nil {
		return &c, nil
	}
	line, col := 1, 1
	if f, perr := parser.ParseBytes(src, 0); perr == nil && path != "$" {
		if p, perr := yaml.PathString(path); perr == nil {
			if n, perr := p.FilterFile(f); perr == nil && n != nil {
				line, col = nodePos(n)
			}
		}
	}
	return nil, fmt.Errorf("%s:%d:%d: %v", name, line, col, err)
}

func nodePos(n ast.Node) (int, int) {
	if tk := n.GetToken(); tk != nil && tk.Position != nil && tk.Position.Line > 0 {
		return tk.Position.Line, max(tk.Position.Column, 1)
	}
	return 1, 1
}

// open makes the target's configuration: namespaces opened (files
// created or extended to their size), subsystems in file order. closeAll
// closes the files.
func (c *serveConfig) open() (cfg target.Config, specs [][]nsSpec, closeAll func(), err error) {
	var files []*target.File
	closeAll = func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, s := range c.Subsystems {
		sub := target.Subsystem{NQN: s.NQN, AllowHosts: s.AllowHosts}
		var ss []nsSpec
		for _, text := range s.Namespaces {
			sp, err := parseNamespace(text)
			if err != nil {
				closeAll()
				return cfg, nil, nil, err
			}
			var ns target.Namespace
			if sp.ram {
				ns, err = target.NewRAM(sp.size, 12)
			} else {
				if sp.size == 0 {
					st, serr := os.Stat(sp.path)
					if serr != nil {
						closeAll()
						return cfg, nil, nil, fmt.Errorf("namespace %s: %w (give file:PATH,size=SIZE to create it)", text, serr)
					}
					sp.size = st.Size() &^ 511
				}
				var f *target.File
				f, err = target.OpenFile(sp.path, sp.size)
				if err == nil {
					files = append(files, f)
					ns = f
				}
			}
			if err != nil {
				closeAll()
				return cfg, nil, nil, err
			}
			sub.Namespaces = append(sub.Namespaces, ns)
			ss = append(ss, sp)
		}
		cfg.Subsystems = append(cfg.Subsystems, sub)
		specs = append(specs, ss)
	}
	return cfg, specs, closeAll, nil
}
