// Command chart turns the raw output of bench/duckdb.sh into its results:
//
//	chart report -raw bench/results/raw -out bench/results [-meta k=v]...
//	    reads hyperfine_<task>.json, rss.tsv and counts.tsv from -raw, writes
//	    duckdb.json and duckdb.md (the markdown table) to -out
//	chart png -in bench/results/duckdb.json -out bench/results/duckdb.png
//	    draws wall time and peak RSS, zflow against DuckDB, per task
package main

import (
	"bufio"
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

// Tasks, in report order, and how they are described.
var tasks = []struct{ id, title string }{
	{"startup", "start-up only (1 row / SELECT 1)"},
	{"convert", "CSV -> Parquet"},
	{"filter", "CSV -> filter + computed column -> Parquet"},
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
	RowsOut  int64     `json:"rows_out"`     // count(*) of the Parquet output, read by DuckDB
}

// Task is one row of the comparison.
type Task struct {
	ID       string  `json:"id"`
	Title    string  `json:"title"`
	ZFlow    Engine  `json:"zflow"`
	DuckDB   Engine  `json:"duckdb"`
	Ratio    float64 `json:"time_ratio_zflow_over_duckdb"` // mean wall time
	CPURatio float64 `json:"cpu_ratio_zflow_over_duckdb"`  // mean user+system
	RSSRatio float64 `json:"rss_ratio_zflow_over_duckdb"`
}

// Report is duckdb.json.
type Report struct {
	Rows    int64             `json:"rows"`
	Runs    int               `json:"runs"`
	Warmup  int               `json:"warmup"`
	Threads int               `json:"duckdb_threads"`
	Meta    map[string]string `json:"meta"`
	Tasks   []Task            `json:"tasks"`
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
		out := fs.String("out", "bench/results", "folder for duckdb.json and duckdb.md")
		rep := Report{Meta: map[string]string{}}
		fs.Int64Var(&rep.Rows, "rows", 0, "rows in the input file")
		fs.IntVar(&rep.Runs, "runs", 0, "hyperfine --runs")
		fs.IntVar(&rep.Warmup, "warmup", 0, "hyperfine --warmup")
		fs.IntVar(&rep.Threads, "threads", 0, "DuckDB threads")
		fs.Var(metaFlag(rep.Meta), "meta", "key=value recorded in the report (repeatable)")
		fs.Parse(os.Args[2:])
		if err := report(&rep, *raw, *out); err != nil {
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

func report(rep *Report, raw, out string) error {
	rss, err := readTSV(filepath.Join(raw, "rss.tsv"))
	if err != nil {
		return err
	}
	counts, err := readTSV(filepath.Join(raw, "counts.tsv"))
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
		task := Task{ID: t.id, Title: t.title}
		for i, r := range h.Results {
			e := Engine{Command: r.Command, MeanS: r.Mean, StddevS: r.Stddev, MedianS: r.Median,
				MinS: r.Min, MaxS: r.Max, UserS: r.User, SystemS: r.System, TimesS: r.Times}
			name := []string{"zflow", "duckdb"}[min(i, 1)]
			e.PeakRSSK = atoi(lookup(rss, t.id, name))
			cnt := counts[t.id]
			if len(cnt) == 2 {
				e.RowsOut = atoi(cnt[min(i, 1)])
			}
			if i == 0 {
				task.ZFlow = e
			} else {
				task.DuckDB = e
			}
		}
		if len(h.Results) != 2 {
			return fmt.Errorf("chart: %s: want 2 hyperfine results (zflow, duckdb), got %d", t.id, len(h.Results))
		}
		if task.ZFlow.RowsOut != task.DuckDB.RowsOut {
			return fmt.Errorf("chart: %s: zflow wrote %d rows, DuckDB %d", t.id, task.ZFlow.RowsOut, task.DuckDB.RowsOut)
		}
		task.Ratio = task.ZFlow.MeanS / task.DuckDB.MeanS
		task.CPURatio = (task.ZFlow.UserS + task.ZFlow.SystemS) / (task.DuckDB.UserS + task.DuckDB.SystemS)
		if task.DuckDB.PeakRSSK > 0 {
			task.RSSRatio = float64(task.ZFlow.PeakRSSK) / float64(task.DuckDB.PeakRSSK)
		}
		rep.Tasks = append(rep.Tasks, task)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "duckdb.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(out, "duckdb.md"))
	if err != nil {
		return err
	}
	writeMarkdown(f, rep)
	return f.Close()
}

func writeMarkdown(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "# zflow vs DuckDB, %s rows\n\n", group(rep.Rows))
	fmt.Fprintf(w, "hyperfine --warmup %d --runs %d; DuckDB SET threads=%d; both write snappy Parquet. "+
		"Wall time is hyperfine's mean ± σ; CPU is mean user+system; peak RSS from one separate run "+
		"under /usr/bin/time -f %%M. Ratios are zflow ÷ DuckDB (below 1: zflow is faster/smaller).\n\n",
		rep.Warmup, rep.Runs, rep.Threads)
	fmt.Fprintln(w, "| task | rows out | zflow wall s | DuckDB wall s | **wall ratio** | zflow CPU s | DuckDB CPU s | CPU ratio | zflow RSS MiB | DuckDB RSS MiB | RSS ratio |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, t := range rep.Tasks {
		rows := group(t.ZFlow.RowsOut)
		if t.ID == "startup" {
			rows = "—"
		}
		fmt.Fprintf(w, "| %s | %s | %.2f ± %.2f | %.2f ± %.2f | **%.2f** | %.2f | %.2f | %.2f | %.0f | %.0f | %.2f |\n",
			t.Title, rows, t.ZFlow.MeanS, t.ZFlow.StddevS, t.DuckDB.MeanS, t.DuckDB.StddevS, t.Ratio,
			t.ZFlow.UserS+t.ZFlow.SystemS, t.DuckDB.UserS+t.DuckDB.SystemS, t.CPURatio,
			float64(t.ZFlow.PeakRSSK)/1024, float64(t.DuckDB.PeakRSSK)/1024, t.RSSRatio)
	}
	fmt.Fprintln(w)
	keys := make([]string, 0, len(rep.Meta))
	for k := range rep.Meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "- %s: `%s`\n", k, rep.Meta[k])
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
	wall := &chart.Bars{
		Title:  fmt.Sprintf("wall time, %s rows (mean of %d)", group(rep.Rows), rep.Runs),
		YLabel: "seconds", Series: []string{"zflow", "DuckDB"}, Format: "%.2f",
	}
	cpu := &chart.Bars{
		Title:  "CPU time (user+system)",
		YLabel: "seconds", Series: []string{"zflow", "DuckDB"}, Format: "%.2f",
	}
	rss := &chart.Bars{
		Title:  "peak RSS",
		YLabel: "MiB", Series: []string{"zflow", "DuckDB"}, Format: "%.0f",
	}
	for _, t := range rep.Tasks {
		label := map[string]string{"startup": "start-up", "convert": "csv->parquet", "filter": "filter+project\n->parquet"}[t.ID]
		wall.Groups = append(wall.Groups, chart.Group{Label: fmt.Sprintf("%s\nx%.2f", label, t.Ratio),
			Values: []float64{t.ZFlow.MeanS, t.DuckDB.MeanS}})
		cpu.Groups = append(cpu.Groups, chart.Group{Label: fmt.Sprintf("%s\nx%.2f", label, t.CPURatio),
			Values: []float64{t.ZFlow.UserS + t.ZFlow.SystemS, t.DuckDB.UserS + t.DuckDB.SystemS}})
		rss.Groups = append(rss.Groups, chart.Group{Label: fmt.Sprintf("%s\nx%.2f", label, t.RSSRatio),
			Values: []float64{float64(t.ZFlow.PeakRSSK) / 1024, float64(t.DuckDB.PeakRSSK) / 1024}})
	}
	rss.Notes = []string{
		fmt.Sprintf("x = zflow / DuckDB. DuckDB threads=%d. %s", rep.Threads, rep.Meta["cpu"]),
		rep.Meta["duckdb"],
	}
	const pw, h = 640, 470
	img := chart.NewCanvas(3*pw, h)
	wall.Draw(img, image.Rect(0, 0, pw, h))
	cpu.Draw(img, image.Rect(pw, 0, 2*pw, h))
	rss.Draw(img, image.Rect(2*pw, 0, 3*pw, h))
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
