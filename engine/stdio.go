package engine

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"
)

// Standard input and output. An operator whose path is "-" reads the run's
// standard input or writes its standard output. Which streams those are is
// the caller's choice: CompileOptions.Stdin (os.Stdin when nil) and
// RunOptions.Stdout (os.Stdout when nil), so an embedder or a test can
// supply its own reader and writer.
//
// Standard input is given at compile time because a source takes its schema
// then (a CSV header, an Arrow stream's schema message): Build peeks at the
// stream through Stdin.Peek, which does not consume it, and the run reads the
// same buffered stream from its start. A plan can run more than once, but
// standard input can be read only once: a second run reads what is left.
//
// Compile allows one node reading standard input and one node writing
// standard output (the stdout sink counts: see StdioUser); two of either is
// an error at both nodes' path.

// StdPath is the path that names standard input or output.
const StdPath = "-"

// StdinPeekSize is how much of standard input Build may look at: what
// Stdin.Peek can return at most.
const StdinPeekSize = 1 << 20

// Stdin is the run's standard input, shared by compile and run.
type Stdin struct {
	src  io.Reader
	once sync.Once
	br   *bufio.Reader
}

// NewStdin wraps r. A *Stdin is returned as it is, and nil means the
// process's standard input, wrapped once per process: what one compile has
// peeked at stays buffered for every plan compiled over the same stream.
func NewStdin(r io.Reader) *Stdin {
	switch r := r.(type) {
	case nil:
		return processStdin()
	case *Stdin:
		return r
	}
	return &Stdin{src: r}
}

var processStdin = sync.OnceValue(func() *Stdin { return &Stdin{src: os.Stdin} })

func (s *Stdin) reader() *bufio.Reader {
	s.once.Do(func() { s.br = bufio.NewReaderSize(s.src, StdinPeekSize) })
	return s.br
}

// Peek returns up to n bytes (at most StdinPeekSize) of standard input
// without consuming them: fewer only at the end of the input, with io.EOF,
// or on a read error. It blocks until they arrive.
func (s *Stdin) Peek(n int) ([]byte, error) {
	n = min(n, StdinPeekSize)
	b, err := s.reader().Peek(n)
	if err == bufio.ErrBufferFull {
		err = nil
	}
	if err != nil && err != io.EOF {
		return b, fmt.Errorf("read standard input: %w", err)
	}
	return b, err
}

// Read reads standard input from where the last Read stopped (at the start,
// whatever Peek looked at).
func (s *Stdin) Read(p []byte) (int, error) { return s.reader().Read(p) }

// StdioUser is implemented by configs whose operator uses standard input or
// output in a way its path parameter does not show (the stdout sink); a
// config whose path is "-" needs not implement it.
type StdioUser interface {
	UsesStdio() (stdin, stdout bool)
}

// PathsConfig is implemented by configs that name files other than through
// one string parameter tagged zflow:"path" (a list of paths, globs): Paths
// returns what they read or write, for the checks that two nodes do not
// write one file, or write a file another reads.
type PathsConfig interface {
	Paths() []string
}
