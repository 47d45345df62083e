package topology

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// TestNotLinux checks, on any OS, the machine Read(Host()) returns off
// Linux: what Go knows, and a note that says what it does not.
func TestNotLinux(t *testing.T) {
	m := NotLinux("darwin", "arm64", 4)
	if m.CPUs != 4 || len(m.Nodes) != 1 || FormatCPUList(m.Nodes[0].CPUs) != "0-3" {
		t.Errorf("NotLinux: %d cpus, nodes %+v", m.CPUs, m.Nodes)
	}
	for _, want := range []string{"darwin/arm64 is not Linux", "NUMA", "hugepages", "DAX", "NVMe", "NICs", "sysfs"} {
		if !strings.Contains(m.Note, want) {
			t.Errorf("note %q does not say %q", m.Note, want)
		}
	}
	var text bytes.Buffer
	if err := m.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text.String(), "Note: "+m.Note+"\n") {
		t.Errorf("WriteText does not start with the note:\n%s", text.String())
	}
	t.Logf("WriteText:\n%s", text.String())
	if adv := m.Check(); len(adv) != 1 || adv[0].What != m.Note || adv[0].Status != StatusMissing || adv[0].Fix != "" {
		t.Errorf("Check = %+v, want the note alone", adv)
	}
	var js bytes.Buffer
	if err := m.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Machine
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Note != m.Note || back.NICs == nil {
		t.Errorf("JSON round trip: %v, %+v", err, back)
	}
	if node, why := m.Pick("auto"); node != 0 {
		t.Errorf("Pick(auto) = %d, %s", node, why)
	}
}

// TestReadHostNote: on Linux the host has no note; elsewhere it is NotLinux.
func TestReadHostNote(t *testing.T) {
	m, err := Read(Host())
	if err != nil {
		if runtime.GOOS == "linux" {
			t.Skipf("Read(Host()): %v (TestHost checks the host)", err)
		}
		t.Fatalf("Read(Host()) on %s: %v", runtime.GOOS, err)
	}
	if (m.Note != "") != (runtime.GOOS != "linux") {
		t.Errorf("Read(Host()) on %s: note %q", runtime.GOOS, m.Note)
	}
	if runtime.GOOS != "linux" && m.CPUs != runtime.NumCPU() {
		t.Errorf("Read(Host()) on %s: %d cpus, runtime.NumCPU() = %d", runtime.GOOS, m.CPUs, runtime.NumCPU())
	}
}
