package duckdbtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a skip for a missing
// DuckDB into a failure: `make test` sets it to 1.
const RequireEnv = "ZFLOW_REQUIRE_DUCKDB"

// Where DuckDB lives, relative to the repository root.
const (
	scriptRel  = "bench/duckdb/query.mjs"
	packageRel = "bench/duckdb/node_modules/@duckdb/node-api/package.json"
)

// installHint says how to make DuckDB available, for skip and fail messages.
const installHint = "install it with `make duckdb`, or by hand: " +
	"apt-get install -y nodejs npm && (cd bench/duckdb && npm ci --no-audit --no-fund)"

// DB is a handle to DuckDB for tests. It holds no process and no session:
// each Run starts both afresh. A DB may be used from several goroutines.
type DB struct {
	node   string // node binary
	script string // absolute path of query.mjs
}

// Result is what one statement gave.
type Result struct {
	Columns []string // column names
	Types   []string // DuckDB type names, e.g. "INTEGER", "DECIMAL(18,3)", "TIMESTAMP"
	Rows    [][]any  // each value nil (NULL) or DuckDB's own text for it (CAST(v AS VARCHAR))
	Err     string   // DuckDB's error message, "" when the statement succeeded
}

// Strings returns each row as its values joined by "|", NULL as "NULL": for
// quick comparisons in tests.
func (r Result) Strings() []string {
	out := make([]string, len(r.Rows))
	var b strings.Builder
	for i, row := range r.Rows {
		b.Reset()
		for j, v := range row {
			if j > 0 {
				b.WriteByte('|')
			}
			if v == nil {
				b.WriteString("NULL")
			} else {
				fmt.Fprint(&b, v)
			}
		}
		out[i] = b.String()
	}
	return out
}

// The outcome of looking for DuckDB, found once per test binary.
var (
	probeOnce sync.Once
	probeDB   *DB
	probeErr  error
)

// Open returns a handle to DuckDB, run through node and @duckdb/node-api from
// bench/duckdb/node_modules (the repository root is found by walking up to go.mod).
// When DuckDB cannot run there (no node, no node_modules) it skips t saying how to
// install it — unless ZFLOW_REQUIRE_DUCKDB=1 (make test sets it), then it fails t.
func Open(t testing.TB) *DB {
	t.Helper()
	probeOnce.Do(func() {
		probeDB, probeErr = find()
		if probeErr == nil {
			probeErr = probeDB.probe()
		}
	})
	if probeErr != nil {
		msg := fmt.Sprintf("duckdbtest: DuckDB cannot run here: %v; %s", probeErr, installHint)
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s (%s=1, so this is a failure, not a skip)", msg, RequireEnv)
		}
		t.Skip(msg)
	}
	return probeDB
}

// find locates the repository root, node, the npm package and the script.
func find() (*DB, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("working directory: %w", err)
	}
	root, err := repoRoot(wd)
	if err != nil {
		return nil, err
	}
	return locate(root)
}

// repoRoot walks up from dir to the first directory holding go.mod.
func repoRoot(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod in %s or above it", dir)
		}
		d = parent
	}
}

// locate checks what a DB under root needs, without running it.
func locate(root string) (*DB, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node not found in PATH: %w", err)
	}
	script := filepath.Join(root, filepath.FromSlash(scriptRel))
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("no DuckDB script: %w", err)
	}
	if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(packageRel))); err != nil {
		return nil, fmt.Errorf("@duckdb/node-api is not installed under %s (npm ci not run?)",
			filepath.Join(root, "bench", "duckdb"))
	}
	return &DB{node: node, script: script}, nil
}

// probe runs one query, so that a broken install (a native binding that does
// not load) is found by Open and not by the first test that uses it.
func (db *DB) probe() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := db.run(ctx, []string{"SELECT 42 AS answer"})
	if err != nil {
		return err
	}
	if res[0].Err != "" || len(res[0].Rows) != 1 || res[0].Rows[0][0] != "42" {
		return fmt.Errorf("SELECT 42 gave %+v", res[0])
	}
	return nil
}

// Run executes the statements in order in one fresh in-memory DuckDB session
// (SET threads=1 first, so output order is deterministic) and returns one Result each;
// an error in one statement is recorded in its Result and the next ones still run.
// A failure of the process itself (node missing, the script failing) fails t
// with node's stderr.
func (db *DB) Run(t testing.TB, stmts ...string) []Result {
	t.Helper()
	res, err := db.run(t.Context(), stmts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Query runs one statement and fails t if DuckDB reports an error.
func (db *DB) Query(t testing.TB, sql string) Result {
	t.Helper()
	r := db.Run(t, sql)[0]
	if r.Err != "" {
		t.Fatalf("duckdbtest: %s\nDuckDB: %s", sql, r.Err)
	}
	return r
}

// wireResult is a Result as query.mjs writes it.
type wireResult struct {
	Columns []string    `json:"columns"`
	Types   []string    `json:"types"`
	Rows    [][]*string `json:"rows"`
	Error   string      `json:"error"`
}

// run is Run returning its failure, for Open's probe and the tests.
func (db *DB) run(ctx context.Context, stmts []string) ([]Result, error) {
	if len(stmts) == 0 {
		return nil, nil
	}
	in, err := json.Marshal(stmts)
	if err != nil {
		return nil, fmt.Errorf("duckdbtest: encode statements: %w", err)
	}
	cmd := exec.CommandContext(ctx, db.node, db.script)
	cmd.Dir = filepath.Dir(db.script)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v after %s)", err, ctx.Err(), time.Since(start).Round(time.Millisecond))
		}
		return nil, fmt.Errorf("duckdbtest: %s %s (%d statements): %w%s",
			db.node, db.script, len(stmts), err, stderrText(&stderr))
	}
	var wire []wireResult
	if err := json.Unmarshal(stdout.Bytes(), &wire); err != nil {
		return nil, fmt.Errorf("duckdbtest: %s wrote %d bytes that are not a JSON array of results: %w%s",
			db.script, stdout.Len(), err, stderrText(&stderr))
	}
	if len(wire) != len(stmts) {
		return nil, fmt.Errorf("duckdbtest: %s answered %d results for %d statements%s",
			db.script, len(wire), len(stmts), stderrText(&stderr))
	}
	res := make([]Result, len(wire))
	for i, w := range wire {
		r := Result{Columns: w.Columns, Types: w.Types, Err: w.Error, Rows: make([][]any, len(w.Rows))}
		if r.Err == "" && len(r.Columns) != len(r.Types) {
			return nil, errors.New("duckdbtest: a result with unequal columns and types")
		}
		for j, row := range w.Rows {
			vals := make([]any, len(row))
			for k, v := range row {
				if v != nil {
					vals[k] = *v
				}
			}
			r.Rows[j] = vals
		}
		res[i] = r
	}
	return res, nil
}

// stderrText is node's stderr for an error message, or nothing when empty.
func stderrText(b *bytes.Buffer) string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return " (no stderr)"
	}
	const max = 8 << 10
	if len(s) > max {
		s = s[:max] + "\n[... stderr cut at 8 KiB]"
	}
	return "\nstderr:\n" + s
}
