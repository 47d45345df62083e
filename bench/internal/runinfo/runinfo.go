// Package runinfo holds what every benchmark command records next to its
// figures (the machine, its load) and the small statistics they share.
package runinfo

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LoadAvg is /proc/loadavg's first three fields, or "?".
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// CPUModel is the CPU's model name from /proc/cpuinfo, or GOARCH.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// Median of v (0 for none); v is not changed.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.SortFunc(s, cmp.Compare)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Short writes n as 4Mi, 64Ki or plain digits.
func Short(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMi", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKi", n>>10)
	}
	return strconv.FormatInt(n, 10)
}

// Ints parses a comma-separated list of positive integers.
func Ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q in %q", f, s)
		}
		out = append(out, n)
	}
	return out, nil
}

// Machine is what every report records about where and how it was made.
// Reports embed it, so its fields sit at the top level of their JSON.
type Machine struct {
	Command   string    `json:"command"`
	Time      time.Time `json:"time"`
	Go        string    `json:"go"`
	CPU       string    `json:"cpu"`
	NumCPU    int       `json:"num_cpu"`
	LoadStart string    `json:"loadavg_start"`
	LoadEnd   string    `json:"loadavg_end"`
}

// Start fills in m for the command named name (run from the repository
// root with go run ./bench/cmd/<name>).
func Start(name string) Machine {
	return Machine{
		Command: "go run ./bench/cmd/" + name + " " + strings.Join(os.Args[1:], " "),
		Time:    time.Now().UTC(), Go: runtime.Version(), CPU: CPUModel(), NumCPU: runtime.NumCPU(),
		LoadStart: LoadAvg(),
	}
}

// Save writes rep as <dir>/<name>.json and draws <dir>/<name>.png; dir ""
// writes nothing.
func Save(dir, name string, rep any, draw func(path string) error) error {
	if dir == "" {
		return nil
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return draw(filepath.Join(dir, name+".png"))
}

// Replot reads <dir>/<name>.json into rep and redraws <dir>/<name>.png.
func Replot(dir, name string, rep any, draw func(path string) error) error {
	b, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, rep); err != nil {
		return fmt.Errorf("%s.json: %w", name, err)
	}
	return draw(filepath.Join(dir, name+".png"))
}

// WriteMarkdown writes <dir>/<name>.md: a "# title" heading, a line saying
// which command made it (make target and README section for the method),
// then what body writes.
func WriteMarkdown(dir, name, title, makeTarget, section string, command string, body func(w io.Writer)) error {
	f, err := os.Create(filepath.Join(dir, name+".md"))
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "# %s\n\nMade by `%s` (`make %s`). See [README.md](README.md), section \"%s\", for the method.\n\n", title, strings.TrimSpace(command), makeTarget, section)
	body(f)
	return f.Close()
}

// TargetCell is a table's target column: "≥ 0.9 (met)", "≥ 0.9
// (missed)", or "—" when there is no target.
func TargetCell(ratio, target float64) string {
	switch {
	case target <= 0:
		return "—"
	case ratio < target:
		return fmt.Sprintf("≥ %.1f (missed)", target)
	}
	return fmt.Sprintf("≥ %.1f (met)", target)
}

// Floats formats each value of v with format, space-separated.
func Floats(v []float64, format string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(s, " ")
}
