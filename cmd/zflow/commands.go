package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/engine"
)

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// helpRequest is what --help (or -h) on a subcommand returns: run prints
// the subcommand's flags on stdout and exits 0.
type helpRequest struct{ fs *flag.FlagSet }

func (h helpRequest) Error() string { return "help requested" }

// print writes the subcommand's usage line and flags to w.
func (h helpRequest) print(w io.Writer) {
	fmt.Fprintf(w, "usage: zflow %s [flags]%s\n", h.fs.Name(), map[string]string{
		"run": " PIPELINE.yaml", "validate": " PIPELINE.yaml...", "plan": " PIPELINE.yaml", "operators": " [NAME]",
	}[h.fs.Name()])
	n := 0
	h.fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	h.fs.SetOutput(w)
	h.fs.PrintDefaults()
	h.fs.SetOutput(io.Discard)
}

// parseFlags parses flags that may come before or after the positional args.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, helpRequest{fs}
			}
			return nil, usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// loadError turns a pipeline loading error into exit code 2 with every
// positioned message on its own line.
func loadError(err error) error {
	return exitError{code: exitUsage, err: err}
}

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	var asJSON jsonFlag
	fs.Var(&asJSON, "json", "print the result as JSON on stdout (or with --json=FILE in FILE): {\"ok\", \"files\", \"errors\": [{\"file\", \"line\", \"col\", \"message\"}]}")
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageError{"validate: no pipeline file given"}
	}
	var bad int
	report := &errorReport{Errors: []jsonError{}}
	for _, f := range files {
		_, err := zflow.Load(f)
		report.add(f, err)
		switch {
		case err != nil:
			bad++
			if !asJSON.on {
				fmt.Fprintln(stderr, err)
			}
		case !asJSON.on:
			fmt.Fprintf(stdout, "%s: ok\n", f)
		}
	}
	if asJSON.on {
		if err := asJSON.write(stdout, report); err != nil {
			return err
		}
	}
	if bad > 0 {
		return exitError{code: exitUsage, err: fmt.Errorf("zflow: %d of %d pipeline files are invalid", bad, len(files))}
	}
	return nil
}

func cmdPlan(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plan", stderr)
	format := fs.String("format", "text", "text, dot or json; with --cluster: text or yaml (the Kubernetes objects)")
	clusterKind := fs.String("cluster", "", "plan a cluster run: kubernetes")
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usageError{"plan: want exactly one pipeline file"}
	}
	if *clusterKind != "" {
		return planCluster(*clusterKind, *format, files[0], stdout)
	}
	p, err := zflow.Load(files[0])
	if err != nil {
		return loadError(err)
	}
	switch *format {
	case "text":
		return p.Plan().WriteText(stdout)
	case "dot":
		return p.Plan().WriteDOT(stdout)
	case "json":
		return p.Plan().WriteJSON(stdout)
	}
	return usageError{fmt.Sprintf("plan: unknown --format %q (known: text, dot, json)", *format)}
}

func cmdVersion(stdout io.Writer) error {
	fmt.Fprintf(stdout, "zflow %s (%s, %s/%s)\n", zflow.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if strings.Contains(d.Path, "arrow-go") {
				fmt.Fprintf(stdout, "arrow-go %s\n", d.Version)
			}
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				fmt.Fprintf(stdout, "commit %s\n", s.Value)
			}
		}
	}
	return nil
}

func cmdOperators(args []string, stdout io.Writer) error {
	fs := newFlags("operators", io.Discard)
	markdown := fs.Bool("markdown", false, "print the reference of every operator as Markdown")
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	specs := engine.DefaultRegistry.Specs()
	if *markdown {
		writeMarkdown(stdout, specs)
		return nil
	}
	if len(args) == 0 {
		fmt.Fprintln(stdout, "Operators (zflow operators NAME for parameters):")
		kind := ""
		for _, s := range specs {
			if k := s.Kind.String(); k != kind {
				kind = k
				fmt.Fprintf(stdout, "\n%ss:\n", k)
			}
			fmt.Fprintf(stdout, "  %-12s %s\n", s.Name, s.Summary)
		}
		return nil
	}
	if len(args) > 1 {
		return usageError{"operators: want at most one operator name"}
	}
	name := args[0]
	var found []*engine.Spec
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) == 0 {
		msg := fmt.Sprintf("unknown operator %q", name)
		if s := engine.Suggest(name, names); s != "" {
			msg += fmt.Sprintf(", did you mean %q?", s)
		}
		sort.Strings(names)
		return exitError{code: exitUsage, err: errors.New("zflow: " + msg + " (known: " + strings.Join(dedup(names), ", ") + ")")}
	}
	for i, s := range found {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		writeSpec(stdout, s)
	}
	return nil
}

func dedup(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// writeSpec prints one operator's reference, generated from its Spec: the
// same struct that validates pipeline files.
func writeSpec(w io.Writer, s *engine.Spec) {
	fmt.Fprintf(w, "%s (%s): %s\n", s.Name, s.Kind, s.Summary)
	if s.Doc != "" {
		fmt.Fprintf(w, "\n%s\n", s.Doc)
	}
	switch {
	case s.Kind == engine.KindSource:
	case s.MaxInputs < 0:
		fmt.Fprintf(w, "inputs: %d or more\n", s.MinInputs)
	case s.MinInputs == s.MaxInputs:
		fmt.Fprintf(w, "inputs: %d\n", s.MinInputs)
	default:
		fmt.Fprintf(w, "inputs: %d to %d\n", s.MinInputs, s.MaxInputs)
	}
	if s.Parallel {
		fmt.Fprintln(w, "parallelism: yes (may run as several instances)")
	}
	params, _ := engine.Params(s.NewConfig())
	if len(params) > 0 {
		fmt.Fprintln(w, "\nParameters:")
		writeParams(w, params, "  ")
	}
	if s.Example != "" {
		fmt.Fprintf(w, "\nExample:\n  %s\n", strings.ReplaceAll(s.Example, "\n", "\n  "))
	}
}

func writeParams(w io.Writer, params []engine.Param, indent string) {
	for _, p := range params {
		line := fmt.Sprintf("%s%s (%s", indent, p.Name, p.Type)
		if p.Required {
			line += ", required"
		}
		if p.Default != "" {
			line += ", default " + p.Default
		}
		line += ")"
		if p.Doc != "" {
			line += ": " + p.Doc
		}
		if len(p.Enum) > 0 {
			line += " [one of: " + strings.Join(p.Enum, ", ") + "]"
		}
		if p.Example != "" {
			line += " — e.g. " + p.Example
		}
		fmt.Fprintln(w, line)
		if len(p.Fields) > 0 {
			writeParams(w, p.Fields, indent+"    ")
		}
	}
}

// writeMarkdown prints the operator reference (docs/operators.md) from the
// registered specs.
func writeMarkdown(w io.Writer, specs []*engine.Spec) {
	fmt.Fprintln(w, "# Operator reference")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Generated by `zflow operators --markdown` from the operators' specs, the same ones that")
	fmt.Fprintln(w, "validate pipeline files. Do not edit by hand: run `go test -ldflags=-checklinkname=0 ./cmd/zflow -run TestOperatorDocs -update`.")
	kind := ""
	for _, s := range specs {
		if k := s.Kind.String(); k != kind {
			kind = k
			fmt.Fprintf(w, "\n## %ss\n", k)
		}
		fmt.Fprintf(w, "\n### `%s`\n\n%s", s.Name, sentence(s.Summary))
		if s.Doc != "" {
			fmt.Fprintf(w, " %s", sentence(s.Doc))
		}
		fmt.Fprintln(w)
		var notes []string
		switch {
		case s.Kind == engine.KindSource:
		case s.MaxInputs < 0:
			notes = append(notes, fmt.Sprintf("inputs: %d or more", s.MinInputs))
		case s.MinInputs == s.MaxInputs:
			notes = append(notes, fmt.Sprintf("inputs: %d", s.MinInputs))
		default:
			notes = append(notes, fmt.Sprintf("inputs: %d to %d", s.MinInputs, s.MaxInputs))
		}
		if s.Parallel {
			notes = append(notes, "may run with `parallelism: N` (auto, the default: "+autoNote(s.Kind)+")")
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "\n%s\n", sentence(strings.Join(notes, "; ")))
		}
		params, _ := engine.Params(s.NewConfig())
		if len(params) > 0 {
			fmt.Fprintln(w, "\n| parameter | type | default | description |\n| --- | --- | --- | --- |")
			writeParamRows(w, params, "")
		}
		if s.Example != "" {
			ex := strings.TrimSpace(s.Example)
			if strings.HasPrefix(ex, "{") {
				fmt.Fprintf(w, "\n```yaml\nmy_%s: %s\n```\n", s.Name, ex)
			} else {
				fmt.Fprintf(w, "\n```yaml\nmy_%s:\n  %s\n```\n", s.Name, strings.ReplaceAll(ex, "\n", "\n  "))
			}
		}
	}
}

// sentence capitalizes s and ends it with a period.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

func writeParamRows(w io.Writer, params []engine.Param, prefix string) {
	for _, p := range params {
		name := "`" + prefix + p.Name + "`"
		if p.Required {
			name += " (required)"
		}
		doc := sentence(p.Doc)
		if len(p.Enum) > 0 {
			doc += " One of: " + strings.Join(p.Enum, ", ") + "."
		}
		if p.Example != "" {
			doc += " Example: `" + p.Example + "`."
		}
		def := ""
		if p.Default != "" {
			def = "`" + p.Default + "`"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, p.Type, def, strings.ReplaceAll(doc, "|", "\\|"))
		if len(p.Fields) > 0 {
			writeParamRows(w, p.Fields, prefix+p.Name+"[].")
		}
	}
}

// autoNote says what `parallelism: auto` gives an operator of kind k.
func autoNote(k engine.Kind) string {
	if k == engine.KindTransform {
		return "one instance per CPU this process may use, capped by settings.threads, in input order, when batches hold 4096 rows or more"
	}
	return "one instance, which keeps its order; with `ordered: false`, one per CPU"
}
