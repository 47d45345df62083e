package storage

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
)

// Spec is a backend kind as it registers itself (the database/sql driver
// pattern: io/posix, io/mmap and io/uring register in init, so a binary
// offers the backends it links and nothing else).
type Spec struct {
	Name    string // snake_case: posix, mmap, uring
	Summary string
	// Probe says whether the backend can run in this process: nil, or the
	// reason it cannot (io_uring refused by seccomp or a sysctl). Select
	// calls it each time; a backend caches what is costly.
	Probe func() error
	// Open opens a file.
	Open func(path string, flag int, perm os.FileMode, opts Options) (File, error)
	// Writes says the backend can open files for writing (mmap cannot).
	Writes bool
}

var (
	regMu sync.RWMutex
	reg   = map[string]Spec{}
)

// Register adds a backend; a duplicate or malformed one panics (a bug).
func Register(s Spec) {
	if s.Name == "" || s.Open == nil {
		panic("storage: Register needs a Name and Open")
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := reg[s.Name]; dup {
		panic(fmt.Sprintf("storage: backend %q registered twice", s.Name))
	}
	reg[s.Name] = s
}

// Names lists the registered backends, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	names := make([]string, 0, len(reg))
	for n := range reg {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the registered backend called name.
func Lookup(name string) (Spec, error) {
	regMu.RLock()
	s, ok := reg[name]
	regMu.RUnlock()
	if !ok {
		return Spec{}, fmt.Errorf("storage: unknown backend %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return s, nil
}

// chosen is the Backend Select returns.
type chosen struct {
	spec   Spec
	opts   Options
	reason string
}

func (c *chosen) Name() string     { return c.spec.Name }
func (c *chosen) Reason() string   { return c.reason }
func (c *chosen) Options() Options { return c.opts }
func (c *chosen) Open(path string, flag int, perm os.FileMode) (File, error) {
	if flag&(os.O_WRONLY|os.O_RDWR) != 0 && !c.spec.Writes {
		return nil, fmt.Errorf("storage: backend %s cannot open %s for writing", c.spec.Name, path)
	}
	return c.spec.Open(path, flag, perm, c.opts)
}

// New returns the registered backend name with opts, without probing the
// file system (Select is what decides; New is for a caller that knows).
func New(name string, opts Options, reason string) (Backend, error) {
	s, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if s.Probe != nil {
		if err := s.Probe(); err != nil {
			return nil, fmt.Errorf("storage: backend %s unavailable: %w", name, err)
		}
	}
	return &chosen{spec: s, opts: opts, reason: reason}, nil
}
