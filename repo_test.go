package zflow_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"testing"
)

// sharedName is the private folder of briefings that sits next to a
// developer's checkout (never in a clone); sharedDir is the path to it
// from the repository root. Built from parts so that this file itself does
// not name the path it forbids.
const (
	sharedName = "sha" + "red"
	sharedDir  = ".." + "/" + sharedName
)

// The repository stands on its own: no tracked file may point at a place
// outside it. TestRepoSelfContained reads every tracked text file and
// reports, as file:line,
//
//   - a relative path whose ".." climbs above the repository root when
//     resolved from the file's directory (in a Markdown link or in plain
//     text);
//   - an absolute path into a developer's workspace (/work/, /home/, /root/,
//     /Users/); system paths a program uses (/proc, /sys, /dev, /usr, /tmp,
//     /etc, /bin, /lib, /var, /run, /mnt, /opt) are fine;
//   - a private briefing file named by name (see briefingNames) that does
//     not resolve to a tracked file, and any path through the private
//     shared folder next to the checkout (sharedDir);
//   - in Markdown files, a relative link that does not resolve to a tracked
//     file or directory.
//
// This file is the one exception: its tables hold such lines on purpose.
const repoTestFile = "repo_test.go"

// briefingNames are documents that lived outside the repository. Naming one
// is fine only where a tracked file of that name is meant (docs/nvme-tcp.md).
var briefingNames = map[string]bool{
	"DESIGN.md": true, "STYLE.md": true, "kernel-guest.md": true, "nvme-tcp.md": true,
	"shm-anchors.md": true, "kubernetes-here.md": true,
}

// workspaceRoots are absolute directories that belong to someone's machine,
// never to the repository or the system.
var workspaceRoots = []string{"/work", "/home", "/root", "/Users"}

// repoIndex knows the tracked files and the directories that hold them.
type repoIndex struct {
	files map[string]bool
	dirs  map[string]bool
}

func newRepoIndex(files []string) *repoIndex {
	ix := &repoIndex{files: map[string]bool{}, dirs: map[string]bool{".": true}}
	for _, f := range files {
		ix.files[f] = true
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			ix.dirs[d] = true
		}
	}
	return ix
}

func (ix *repoIndex) exists(p string) bool { return ix.files[p] || ix.dirs[p] }

// pathToken matches a run of characters that can make up a path.
var pathToken = regexp.MustCompile(`[A-Za-z0-9._~/@+%-]+`)

// resolve joins rel to dir and tells whether the result stays inside the
// repository.
func resolve(dir, rel string) (string, bool) {
	p := path.Join(dir, rel)
	return p, p != ".." && !strings.HasPrefix(p, "../")
}

func hasDotDot(tok string) bool {
	for _, c := range strings.Split(tok, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

// lineProblems returns what is wrong with one line of file (a
// slash-separated path from the repository root). fixture relaxes the
// ".." rule for files under testdata/, whose relative paths (symlinks of a
// fake sysfs) describe other file trees.
func (ix *repoIndex) lineProblems(file, line string, fixture bool) []string {
	var out []string
	dir := path.Dir(file)
	for _, loc := range pathToken.FindAllStringIndex(line, -1) {
		tok := line[loc[0]:loc[1]]
		if strings.HasSuffix(tok, ".") && !strings.HasSuffix(tok, "..") {
			tok = tok[:len(tok)-1] // the end of a sentence
		}
		if tok == "" {
			continue
		}
		// "$(dirname "$0")/../x" and "${DIR}/../x" continue a directory
		// that a script computes: take them as relative to the file.
		if strings.HasPrefix(tok, "/") && loc[0] > 0 && strings.ContainsRune(")}", rune(line[loc[0]-1])) {
			tok = "." + tok
		}
		if strings.HasPrefix(tok, "/") {
			if strings.HasPrefix(tok, "//") {
				continue // a URL's host part
			}
			for _, w := range workspaceRoots {
				if tok == w || strings.HasPrefix(tok, w+"/") {
					out = append(out, fmt.Sprintf("absolute path into a workspace outside the repository: %s", tok))
					break
				}
			}
		} else if strings.Contains(tok, "/") && hasDotDot(tok) {
			if p, inside := resolve(dir, tok); !inside && !fixture {
				out = append(out, fmt.Sprintf("relative path climbs above the repository root: %s (from %s/ it is %s)", tok, dir, p))
			} else if inside && (strings.Contains("/"+tok+"/", "/"+sharedDir+"/") || strings.HasSuffix(tok, sharedDir)) && !ix.exists(p) {
				out = append(out, fmt.Sprintf("path to the private shared folder: %s", tok))
			}
		}
		if base := path.Base(tok); briefingNames[base] && !strings.Contains(tok, "//") {
			fromDir, okDir := resolve(dir, tok)
			fromRoot, okRoot := resolve(".", strings.TrimPrefix(tok, "/"))
			if !(okDir && ix.files[fromDir]) && !(okRoot && ix.files[fromRoot]) {
				out = append(out, fmt.Sprintf("names %s, which is not a file in the repository (the documents are under docs/)", tok))
			}
		}
	}
	return out
}

var (
	mdLink     = regexp.MustCompile(`\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	mdRefDef   = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)`)
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	urlScheme  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	codeFences = []string{"```", "~~~"}
)

// linkProblems returns what is wrong with the relative links of one line of
// a Markdown file (outside code blocks; the caller skips those).
func (ix *repoIndex) linkProblems(file, line string) []string {
	var out []string
	line = codeSpan.ReplaceAllString(line, "``")
	var targets []string
	for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
		targets = append(targets, m[1])
	}
	if m := mdRefDef.FindStringSubmatch(line); m != nil {
		targets = append(targets, m[1])
	}
	for _, t := range targets {
		if urlScheme.MatchString(t) || strings.HasPrefix(t, "#") || strings.HasPrefix(t, "//") {
			continue
		}
		t, _, _ = strings.Cut(t, "#")
		t, _, _ = strings.Cut(t, "?")
		if u, err := url.PathUnescape(t); err == nil {
			t = u
		}
		if t == "" {
			continue
		}
		base := path.Dir(file)
		if strings.HasPrefix(t, "/") {
			base, t = ".", strings.TrimPrefix(t, "/")
		}
		p, inside := resolve(base, t)
		switch {
		case !inside:
			out = append(out, fmt.Sprintf("link %s climbs above the repository root", t))
		case !ix.exists(p):
			out = append(out, fmt.Sprintf("link %s: %s is not a tracked file or directory", t, p))
		}
	}
	return out
}

// trackedFiles lists the repository's tracked files, or skips the test when
// git or the repository is not there (and fails instead under CI=true).
func trackedFiles(t *testing.T) []string {
	t.Helper()
	unavailable := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot list tracked files under CI: %s", why)
		}
		t.Skipf("cannot list tracked files (%s); run in a git checkout with git installed", why)
	}
	if _, err := exec.LookPath("git"); err != nil {
		unavailable("git is not installed")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		unavailable("not a git checkout: " + err.Error())
	}
	wd, _ := os.Getwd()
	if st, err := os.Stat(strings.TrimSpace(string(top))); err != nil || !sameDir(wd, st) {
		unavailable("the package directory is not the repository root")
	}
	out, err := exec.Command("git", "ls-files", "-z").Output()
	if err != nil {
		unavailable("git ls-files: " + err.Error())
	}
	var files []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		t.Fatal("git ls-files lists no files")
	}
	return files
}

func sameDir(wd string, top os.FileInfo) bool {
	st, err := os.Stat(wd)
	return err == nil && os.SameFile(st, top)
}

func TestRepoSelfContained(t *testing.T) {
	files := trackedFiles(t)
	ix := newRepoIndex(files)
	checked := 0
	for _, f := range files {
		if f == repoTestFile {
			continue
		}
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree, not yet committed
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.IndexByte(data, 0) >= 0 {
			continue // binary
		}
		checked++
		fixture := strings.HasPrefix(f, "testdata/") || strings.Contains(f, "/testdata/")
		md := strings.HasSuffix(f, ".md")
		fence := ""
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			for _, p := range ix.lineProblems(f, line, fixture) {
				t.Errorf("%s:%d: %s", f, n, p)
			}
			if !md {
				continue
			}
			trimmed := strings.TrimSpace(line)
			if fence != "" {
				if strings.HasPrefix(trimmed, fence) {
					fence = ""
				}
				continue
			}
			for _, cf := range codeFences {
				if strings.HasPrefix(trimmed, cf) {
					fence = cf
				}
			}
			if fence != "" {
				continue
			}
			for _, p := range ix.linkProblems(f, line) {
				t.Errorf("%s:%d: %s", f, n, p)
			}
		}
		if err := sc.Err(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if checked < 10 {
		t.Fatalf("only %d text files checked; is the file list right?", checked)
	}
}

// TestRepoMatcher checks the matchers on synthetic lines, so that a matcher
// that finds nothing cannot pass TestRepoSelfContained.
func TestRepoMatcher(t *testing.T) {
	ix := newRepoIndex([]string{
		"README.md", "docs/ARCHITECTURE.md", "docs/nvme-tcp.md", "docs/guest.md",
		"interop/README.md", "interop/guest/run.sh", "nvmeof/doc.go", "cmd/zflow/main_test.go",
		"pipelines/testdata/bad/01.yaml", "bench/results/arena.png",
	})
	for _, c := range []struct {
		file, line string
		fixture    bool
		want       string // a substring of the one problem expected; "" for none
	}{
		// Positive: climbing out, workspaces, briefing files, the shared folder.
		{"README.md", "See `" + sharedDir + "/DESIGN.md` for the architecture.", false, "climbs above"},
		{"README.md", "see [the design](../DESIGN.md)", false, "climbs above"},
		{"nvmeof/doc.go", "// (see ../../notes/x.md for the brief)", false, "climbs above"},
		{"interop/guest/run.sh", `cd "$(dirname "$0")/../../.."`, false, "climbs above"},
		{"cmd/zflow/main_test.go", `root := "../../../elsewhere"`, false, "climbs above"},
		{"interop/README.md", "hangs a stock kernel; see `/work/" + sharedName + "/kernel-guest.md`.", false, "workspace"},
		{"Makefile", "CACHE=/home/dev/.cache/zflow", false, "workspace"},
		{"docs/guest.md", "unpacked under /root/kernel-guest", false, "workspace"},
		{"README.md", "cd /work", false, "workspace"},
		{"buffers/doc.go", `// DESIGN.md, "Memory, NUMA and CXL".`, false, "DESIGN.md"},
		{"bench/doc.go", "// the rules in STYLE.md apply", false, "STYLE.md"},
		{"interop/guest/run.sh", "# see kernel-guest.md", false, "kernel-guest.md"},
		{"nvmeof/doc.go", "// see shm-anchors.md and kubernetes-here.md", false, "shm-anchors.md"},
		{"nvmeof/doc.go", "// the brief is nvme-tcp.md", false, "nvme-tcp.md"},
		{"docs/guest.md", "see " + sharedDir + "/hooks for the rest", false, "shared folder"},
		{"pipelines/testdata/bad/01.yaml", "path: /home/me/trades.csv", true, "workspace"},
		// Negative: system paths, in-repo paths, URLs, fixtures, prose.
		{"interop/guest/init.sh", "mount -t sysfs sysfs /sys; cat /proc/uptime > /tmp/x; ls /dev/dax0.0", false, ""},
		{"Makefile", "PATH=/usr/local/go/bin:/usr/bin:/bin; /etc/nvme/hostnqn /var/lib /run/x /mnt/y /opt/z /lib/modules", false, ""},
		{"interop/guest/run.sh", `cd "$(dirname "$0")/../.."`, false, ""},
		{"cmd/zflow/main_test.go", `path := "../../docs/operators.md"`, false, ""},
		{"nvmeof/doc.go", "// docs/nvme-tcp.md is the brief", false, ""},
		{"docs/ARCHITECTURE.md", "[nvme-tcp.md](nvme-tcp.md) and [guest.md](guest.md)", false, ""},
		{"README.md", "see https://github.com/home/work/../x and //cdn/root/y", false, ""},
		{"pipelines/testdata/bad/01.yaml", "-- sys/class/net/lo -> ../../../../devices/virtual/net/lo --", true, ""},
		{"README.md", "go test ./... and a..b and ... and ..", false, ""},
		{"README.md", "workspace/home/root are words; user/work/x is relative", false, ""},
	} {
		got := ix.lineProblems(c.file, c.line, c.fixture)
		switch {
		case c.want == "" && len(got) != 0:
			t.Errorf("%s: %q: got %q, want no problem", c.file, c.line, got)
		case c.want != "" && (len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), c.want)):
			t.Errorf("%s: %q: got %q, want a problem mentioning %q", c.file, c.line, got, c.want)
		}
	}

	for _, c := range []struct {
		file, line string
		want       string
	}{
		{"README.md", "[arch](docs/ARCHITECTURE.md#the-life-of-a-batch)", ""},
		{"README.md", "[docs](docs/) and [guest](./docs/guest.md \"title\")", ""},
		{"docs/guest.md", "[interop](../interop/README.md), [top](/README.md), [web](https://example.com/x.md)", ""},
		{"docs/guest.md", "[here](#costs) and `[not a link](nowhere.md)`", ""},
		{"docs/guest.md", "[chart](../bench/results/arena.png)", ""},
		{"README.md", "[design](" + sharedDir + "/DESIGN.md)", "climbs above"},
		{"README.md", "[gone](docs/DESIGN.md)", "not a tracked file"},
		{"docs/guest.md", "[x](missing.md#a)", "not a tracked file"},
		{"docs/guest.md", "[ref]: ../nowhere/README.md", "not a tracked file"},
		{"docs/guest.md", "[ref]: ../../outside.md", "climbs above"},
	} {
		got := ix.linkProblems(c.file, c.line)
		switch {
		case c.want == "" && len(got) != 0:
			t.Errorf("link %s: %q: got %q, want no problem", c.file, c.line, got)
		case c.want != "" && (len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), c.want)):
			t.Errorf("link %s: %q: got %q, want a problem mentioning %q", c.file, c.line, got, c.want)
		}
	}
}
