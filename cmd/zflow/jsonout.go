package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/zflowdev/zflow/internal/atomicfile"
	"github.com/zflowdev/zflow/pipelines"
)

// jsonFlag is --json (JSON on stdout) or --json=FILE (JSON in FILE, and
// stdout stays free for a stdout sink). A FILE named true or false must
// be written ./true.
type jsonFlag struct {
	on   bool
	path string
}

func (j *jsonFlag) IsBoolFlag() bool { return true }

func (j *jsonFlag) String() string {
	switch {
	case j == nil || !j.on:
		return ""
	case j.path == "":
		return "true"
	}
	return j.path
}

func (j *jsonFlag) Set(s string) error {
	switch s {
	case "true":
		j.on, j.path = true, ""
	case "false":
		j.on, j.path = false, ""
	case "":
		return errors.New("want --json or --json=FILE")
	default:
		j.on, j.path = true, s
	}
	return nil
}

// write encodes v, indented, on stdout or into the flag's FILE. FILE is
// replaced atomically: a failed write leaves no partial file under its
// name.
func (j *jsonFlag) write(stdout io.Writer, v any) error {
	if j.path == "" {
		return encodeJSON(stdout, v)
	}
	f, err := atomicfile.Create(j.path)
	if err != nil {
		return fmt.Errorf("--json=%s: %w", j.path, err)
	}
	if err := encodeJSON(f, v); err != nil {
		f.Abort()
		return fmt.Errorf("--json=%s: %w", j.path, err)
	}
	if err := f.Commit(); err != nil {
		f.Abort()
		return fmt.Errorf("--json=%s: %w", j.path, err)
	}
	return nil
}

func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// errorReport is the JSON form of invalid pipelines, printed by
// `zflow run --json` and `zflow validate --json`:
//
//	{
//	  "ok": false,
//	  "files": [{"file": "p.yaml", "ok": false, "errors": 1}],
//	  "errors": [{"file": "p.yaml", "line": 7, "col": 13, "message": "unknown transform type \"filtre\", did you mean \"filter\"?"}]
//	}
//
// line and col are 1-based, 0 when the error has no place in the file (a
// file that cannot be read). errors lists every error of every file, in
// file order, each file's sorted by place; files has one entry per file
// given, in order. The text form of an error is file:line:col: message.
type errorReport struct {
	OK     bool         `json:"ok"`
	Files  []fileReport `json:"files"`
	Errors []jsonError  `json:"errors"`
}

type fileReport struct {
	File   string `json:"file"`
	OK     bool   `json:"ok"`
	Errors int    `json:"errors"`
}

type jsonError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
}

// newErrorReport is the report of one file that failed with err.
func newErrorReport(err error, file string) *errorReport {
	r := &errorReport{Errors: []jsonError{}}
	r.add(file, err)
	return r
}

// add adds file's outcome: err nil for a valid file.
func (r *errorReport) add(file string, err error) {
	fr := fileReport{File: file, OK: err == nil}
	if err != nil {
		var list pipelines.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				r.Errors = append(r.Errors, jsonError{File: e.File, Line: e.Line, Col: e.Col, Message: e.Msg})
			}
			fr.Errors = len(list)
		} else {
			r.Errors = append(r.Errors, jsonError{File: file, Message: err.Error()})
			fr.Errors = 1
		}
	}
	r.Files = append(r.Files, fr)
	r.OK = len(r.Errors) == 0
}
