// Command chart turns the raw output of bench/duckdb.sh and
// bench/stateful.sh into their results:
//
//	chart report -raw bench/results/raw -out bench/results [-name duckdb] [-meta k=v]...
//	    reads tasks.tsv (id, title, threads, chart label, and optionally the
//	    task's wall-time target), hyperfine_<task>.json (zflow, DuckDB and
//	    optionally Polars, in that order), rss.tsv, counts.tsv and checks.tsv
//	    from -raw, writes <name>.json and <name>.md (the markdown tables) to -out
//	chart png -in bench/results/duckdb.json -out bench/results/duckdb.png
//	    draws wall time, CPU and peak RSS of every engine, per task
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/zflowdev/zflow/bench/internal/chart"
)

// engineNames are the engines of a task's hyperfine results, in order.
var engineNames = []string{"zflow", "duckdb", "polars"}

// Targets of the comparison: zflow's wall time and peak RSS as a fraction
// of DuckDB's, on every task but start-up (a task of tasks.tsv may set its
// own wall target).
const (
	wallTarget = 0.7
	rssTarget  = 1.0
)

// taskDef is a line of tasks.tsv: the tasks the script ran, in order.
type taskDef struct {
	id, title, label string
	threads          int
	wallTarget       float64 // 0: wallTarget
}

func readTasks(path string) ([]taskDef, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []taskDef
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 && len(f) != 5 {
			return nil, fmt.Errorf("chart: %s:%d: want id, title, threads, label[, wall target], got %q", path, i+1, line)
		}
		d := taskDef{id: f[0], title: f[1], threads: int(atoi(f[2])), label: strings.ReplaceAll(f[3], `\n`, "\n")}
		if len(f) == 5 {
			t, err := strconv.ParseFloat(f[4], 64)
			if err != nil || t <= 0 {
				return nil, fmt.Errorf("chart: %s:%d: wall target %q is not a positive number", path, i+1, f[4])
			}
			d.wallTarget = t
		}
		out = append(out, d)
	}
	return out, nil
}

// Engine is one side of one task.
type Engine struct {
	Command  string    `json:"command"`
	MeanS    float64   `json:"mean_s"`
	StddevS  float64   `json:"stddev_s"`
	MedianS  float64   `json:"median_s"`
	MinS     float64   `json:"min_s"`
	MaxS     float64   `json:"max_s"`
	UserS    float64   `json:"user_s"`   // mean
	SystemS  float64   `json:"system_s"` // mean
	TimesS   []float64 `json:"times_s"`
	PeakRSSK int64     `json:"peak_rss_kib"` // /usr/bin/time %M, one separate run
	RowsOut  int64     `json:"rows_out"`     // count(*) of the output, read by DuckDB
}

// Task is one row of the comparison.
type Task struct {
	ID       string  `json:"id"`
	Title    string  `json:"title"`
	Label    string  `json:"label"`   // in the chart
	Threads  int     `json:"threads"` // both engines'
	Check    string  `json:"check"`   // how the outputs were compared, and the verdict
	ZFlow    Engine  `json:"zflow"`
	DuckDB   Engine  `json:"duckdb"`
	Ratio    float64 `json:"time_ratio_zflow_over_duckdb"` // mean wall time
	CPURatio float64 `json:"cpu_ratio_zflow_over_duckdb"`  // mean user+system
	RSSRatio float64 `json:"rss_ratio_zflow_over_duckdb"`
	// WallTarget is the most Ratio may be (the report's default, or the
	// task's own from tasks.tsv).
	WallTarget float64 `json:"wall_target"`
	// Polars is the third engine of bench/stateful.sh, with zflow's ratios
	// to it; nil in bench/duckdb.sh's report.
	Polars         *Engine `json:"polars,omitempty"`
	PolarsRatio    float64 `json:"time_ratio_zflow_over_polars,omitempty"`
	PolarsRSSRatio float64 `json:"rss_ratio_zflow_over_polars,omitempty"`
}

// Report is duckdb.json (or stateful.json).
type Report struct {
	Rows   int64             `json:"rows"`
	Runs   int               `json:"runs"`
	Warmup int               `json:"warmup"`
	Meta   map[string]string `json:"meta"`
	Tasks  []Task            `json:"tasks"`
}

type hyperfineJSON struct {
	Results []struct {
		Command string    `json:"command"`
		Mean    float64   `json:"mean"`
		Stddev  float64   `json:"stddev"`
		Median  float64   `json:"median"`
		User    float64   `json:"user"`
		System  float64   `json:"system"`
		Min     float64   `json:"min"`
		Max     float64   `json:"max"`
		Times   []float64 `json:"times"`
	} `json:"results"`
}

type metaFlag map[string]string

func (m metaFlag) String() string { return "" }
func (m metaFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want key=value, got %q", s)
	}
	m[k] = v
	return nil
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "report":
		fs := flag.NewFlagSet("report", flag.ExitOnError)
		raw := fs.String("raw", "bench/results/raw", "folder with hyperfine_<task>.json, rss.tsv, counts.tsv")
		out := fs.String("out", "bench/results", "folder for <name>.json and <name>.md")
		name := fs.String("name", "duckdb", "base name of the report's files")
		rep := Report{Meta: map[string]string{}}
		fs.Int64Var(&rep.Rows, "rows", 0, "rows in the input file")
		fs.IntVar(&rep.Runs, "runs", 0, "hyperfine --runs")
		fs.IntVar(&rep.Warmup, "warmup", 0, "hyperfine --warmup")
		fs.Var(metaFlag(rep.Meta), "meta", "key=value recorded in the report (repeatable)")
		fs.Parse(os.Args[2:])
		if err := report(&rep, *raw, *out, *name); err != nil {
			fatal(err)
		}
	case "png":
		fs := flag.NewFlagSet("png", flag.ExitOnError)
		in := fs.String("in", "bench/results/duckdb.json", "the report")
		out := fs.String("out", "bench/results/duckdb.png", "the PNG to write")
		fs.Parse(os.Args[2:])
		if err := drawPNG(*in, *out); err != nil {
			fatal(err)
		}
	default:
		usage()
	}
}

func report(rep *Report, raw, out, name string) error {
	rss, err := readTSV(filepath.Join(raw, "rss.tsv"))
	if err != nil {
		return err
	}
	counts, err := readTSV(filepath.Join(raw, "counts.tsv"))
	if err != nil {
		return err
	}
	checks, err := readTSV(filepath.Join(raw, "checks.tsv"))
	if err != nil {
		return err
	}
	tasks, err := readTasks(filepath.Join(raw, "tasks.tsv"))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(raw, "hyperfine_"+t.id+".json"))
		if err != nil {
			return err
		}
		var h hyperfineJSON
		if err := json.Unmarshal(b, &h); err != nil {
			return fmt.Errorf("chart: %s: %w", t.id, err)
		}
		task := Task{ID: t.id, Title: t.title, Label: t.label, Threads: t.threads, Check: strings.Join(checks[t.id], " "),
			WallTarget: cmp.Or(t.wallTarget, wallTarget)}
		if len(h.Results) != 2 && len(h.Results) != 3 {
			return fmt.Errorf("chart: %s: want 2 or 3 hyperfine results (zflow, duckdb[, polars]), got %d", t.id, len(h.Results))
		}
		cnt := counts[t.id]
		for i, r := range h.Results {
			e := Engine{Command: r.Command, MeanS: r.Mean, StddevS: r.Stddev, MedianS: r.Median,
				MinS: r.Min, MaxS: r.Max, UserS: r.User, SystemS: r.System, TimesS: r.Times}
			name := engineNames[i]
			e.PeakRSSK = atoi(lookup(rss, t.id, name))
			if len(cnt) == len(h.Results) {
				e.RowsOut = atoi(cnt[i])
			}
			switch i {
			case 0:
				task.ZFlow = e
			case 1:
				task.DuckDB = e
			default:
				task.Polars = &e
			}
		}
		if task.ZFlow.RowsOut != task.DuckDB.RowsOut || (task.Polars != nil && task.Polars.RowsOut != task.ZFlow.RowsOut) {
			return fmt.Errorf("chart: %s: the engines wrote different row counts: %v", t.id, cnt)
		}
		task.Ratio = task.ZFlow.MeanS / task.DuckDB.MeanS
		task.CPURatio = (task.ZFlow.UserS + task.ZFlow.SystemS) / (task.DuckDB.UserS + task.DuckDB.SystemS)
		if task.DuckDB.PeakRSSK > 0 {
			task.RSSRatio = float64(task.ZFlow.PeakRSSK) / float64(task.DuckDB.PeakRSSK)
		}
		if p := task.Polars; p != nil {
			task.PolarsRatio = task.ZFlow.MeanS / p.MeanS
			if p.PeakRSSK > 0 {
				task.PolarsRSSRatio = float64(task.ZFlow.PeakRSSK) / float64(p.PeakRSSK)
			}
		}
		rep.Tasks = append(rep.Tasks, task)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(out, name+".json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(out, name+".md"))
	if err != nil {
		return err
	}
	writeMarkdown(f, rep)
	return f.Close()
}

func writeMarkdown(w io.Writer, rep *Report) {
	polars := slices.ContainsFunc(rep.Tasks, func(t Task) bool { return t.Polars != nil })
	engines := "DuckDB"
	if polars {
		engines = "DuckDB and Polars"
	}
	fmt.Fprintf(w, "# zflow vs %s, %s rows\n\n", engines, group(rep.Rows))
	fmt.Fprintf(w, "hyperfine --warmup %d --runs %d per task; every engine gets the same number of threads "+
		"(DuckDB `SET threads`, Polars `POLARS_MAX_THREADS`, zflow `settings.threads`, its pipelines otherwise without hints). "+
		"Wall time is hyperfine's mean ± σ; CPU is mean user+system; peak RSS from one separate run "+
		"under /usr/bin/time -f %%M. Ratios are zflow ÷ DuckDB (below 1: zflow is faster/smaller); "+
		"targets: wall ≤ the task's target (the targets column; %.1f when a task sets none) and peak RSS ≤ %.1f. "+
		"The outputs were compared by the script (last column).\n\n",
		rep.Warmup, rep.Runs, wallTarget, rssTarget)
	head := "| task | threads | rows out | zflow wall s | DuckDB wall s | **wall ratio** | zflow CPU s | DuckDB CPU s | CPU ratio | zflow RSS MiB | DuckDB RSS MiB | RSS ratio |"
	rule := "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	if polars {
		head += " Polars wall s | zflow ÷ Polars wall | Polars RSS MiB | zflow ÷ Polars RSS |"
		rule += " ---: | ---: | ---: | ---: |"
	}
	fmt.Fprintln(w, head+" targets (vs DuckDB) | outputs |")
	fmt.Fprintln(w, rule+" --- | --- |")
	for _, t := range rep.Tasks {
		rows, verdict := group(t.ZFlow.RowsOut), "—"
		if t.ID == "startup" {
			rows = "—"
		} else {
			target := cmp.Or(t.WallTarget, wallTarget)
			verdict = metOrMissed(t.Ratio <= target, fmt.Sprintf("wall ≤ %.1f", target)) + ", " + metOrMissed(t.RSSRatio <= rssTarget, "RSS")
		}
		fmt.Fprintf(w, "| %s | %d | %s | %.2f ± %.2f | %.2f ± %.2f | **%.2f** | %.2f | %.2f | %.2f | %.0f | %.0f | %.2f |",
			t.Title, t.Threads, rows, t.ZFlow.MeanS, t.ZFlow.StddevS, t.DuckDB.MeanS, t.DuckDB.StddevS, t.Ratio,
			t.ZFlow.UserS+t.ZFlow.SystemS, t.DuckDB.UserS+t.DuckDB.SystemS, t.CPURatio,
			float64(t.ZFlow.PeakRSSK)/1024, float64(t.DuckDB.PeakRSSK)/1024, t.RSSRatio)
		if polars {
			if p := t.Polars; p != nil {
				fmt.Fprintf(w, " %.2f ± %.2f | %.2f | %.0f | %.2f |", p.MeanS, p.StddevS, t.PolarsRatio, float64(p.PeakRSSK)/1024, t.PolarsRSSRatio)
			} else {
				fmt.Fprint(w, " — | — | — | — |")
			}
		}
		fmt.Fprintf(w, " %s | %s |\n", verdict, t.Check)
	}
	fmt.Fprintln(w)
	writeScaling(w, rep)
	keys := make([]string, 0, len(rep.Meta))
	for k := range rep.Meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "- %s: `%s`\n", k, rep.Meta[k])
	}
}

func metOrMissed(ok bool, what string) string {
	if ok {
		return what + " met"
	}
	return what + " **missed**"
}

// writeScaling pairs each task run at 1 thread with the same task at more,
// and prints each engine's speed-up.
func writeScaling(w io.Writer, rep *Report) {
	byTitle := map[string][]Task{}
	var titles []string
	for _, t := range rep.Tasks {
		if len(byTitle[t.Title]) == 0 {
			titles = append(titles, t.Title)
		}
		byTitle[t.Title] = append(byTitle[t.Title], t)
	}
	header := false
	for _, title := range titles {
		ts := byTitle[title]
		if len(ts) < 2 || ts[0].Threads != 1 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "Scaling: wall time at 1 thread ÷ wall time at more (the same task and files).")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| task | threads | zflow speed-up | DuckDB speed-up | zflow ÷ DuckDB at 1 thread |")
			fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: |")
			header = true
		}
		for _, t := range ts[1:] {
			fmt.Fprintf(w, "| %s | 1 → %d | %.2f | %.2f | %.2f |\n", title, t.Threads,
				ts[0].ZFlow.MeanS/t.ZFlow.MeanS, ts[0].DuckDB.MeanS/t.DuckDB.MeanS, ts[0].Ratio)
		}
	}
	if header {
		fmt.Fprintln(w)
	}
}

func drawPNG(in, out string) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("chart: %s: %w", in, err)
	}
	series := []string{"zflow", "DuckDB"}
	if slices.ContainsFunc(rep.Tasks, func(t Task) bool { return t.Polars != nil }) {
		series = append(series, "Polars")
	}
	wall := &chart.Bars{
		Title:  fmt.Sprintf("wall time, %s rows (mean of %d)", group(rep.Rows), rep.Runs),
		YLabel: "seconds", Series: series, Format: "%.2f",
	}
	cpu := &chart.Bars{
		Title:  "CPU time (user+system)",
		YLabel: "seconds", Series: series, Format: "%.2f",
	}
	rss := &chart.Bars{
		Title:  "peak RSS",
		YLabel: "MiB", Series: series, Format: "%.0f",
	}
	for _, t := range rep.Tasks {
		label := fmt.Sprintf("%s\n%d thr", t.Label, t.Threads)
		engines := []Engine{t.ZFlow, t.DuckDB}
		if len(series) == 3 {
			p := Engine{}
			if t.Polars != nil {
				p = *t.Polars
			}
			engines = append(engines, p)
		}
		var wv, cv, rv []float64
		for _, e := range engines {
			wv = append(wv, e.MeanS)
			cv = append(cv, e.UserS+e.SystemS)
			rv = append(rv, float64(e.PeakRSSK)/1024)
		}
		wall.Groups = append(wall.Groups, chart.Group{Label: fmt.Sprintf("%s\nx%.2f", label, t.Ratio), Values: wv})
		cpu.Groups = append(cpu.Groups, chart.Group{Label: fmt.Sprintf("%s\nx%.2f", label, t.CPURatio), Values: cv})
		rss.Groups = append(rss.Groups, chart.Group{Label: fmt.Sprintf("%s\nx%.2f", label, t.RSSRatio), Values: rv})
	}
	rss.Notes = []string{
		fmt.Sprintf("x = zflow / DuckDB, same threads. %s", rep.Meta["cpu"]),
		strings.TrimSpace(rep.Meta["duckdb"] + " " + rep.Meta["polars"]),
	}
	// One panel per row, as wide as the tasks need.
	pw, h := max(640, 110*len(rep.Tasks)), 470
	img := chart.NewCanvas(pw, 3*h)
	wall.Draw(img, image.Rect(0, 0, pw, h))
	cpu.Draw(img, image.Rect(0, h, pw, 2*h))
	rss.Draw(img, image.Rect(0, 2*h, pw, 3*h))
	return chart.WritePNG(out, img)
}

func readTSV(path string) (map[string][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) < 2 {
			continue
		}
		out[fields[0]] = append(out[fields[0]], fields[1:]...)
	}
	return out, sc.Err()
}

// lookup finds the value after name in the task's fields (name, value, ...).
func lookup(m map[string][]string, task, name string) string {
	f := m[task]
	for i := 0; i+1 < len(f); i += 2 {
		if f[i] == name {
			return f[i+1]
		}
	}
	return ""
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n
}

// group writes n with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: chart report [-raw DIR] [-out DIR] [-meta k=v]... | chart png [-in JSON] [-out PNG]")
	os.Exit(2)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "chart:", err)
	os.Exit(1)
}
