package atomicfile

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestParseStat(t *testing.T) {
	rest := " 1 1 1 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 "
	tests := []struct {
		line  string
		state byte
		start uint64
		ok    bool
	}{
		{"1234 (zflow) S" + rest + "98765 1000 200", 'S', 98765, true},
		{"1234 (a b) c)) Z" + rest + "7 1000 200", 'Z', 7, true},
		{"1234 (x) R" + rest + "18446744073709551615", 'R', 18446744073709551615, true},
		{"1234 (zflow S" + rest + "98765", 0, 0, false},
		{"1234 (zflow) S 1 1", 0, 0, false},
		{"1234 (zflow) S" + rest + "-5", 0, 0, false},
		{"1234 (zflow) SS" + rest + "5", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tc := range tests {
		st, err := parseStat(tc.line)
		if (err == nil) != tc.ok || st.state != tc.state || st.start != tc.start {
			t.Errorf("parseStat(%q) = %+v, %v", tc.line, st, err)
		}
	}
}

func writeStat(t *testing.T, proc string, pid int, state byte, start uint64) {
	t.Helper()
	dir := filepath.Join(proc, strconv.Itoa(pid))
	os.MkdirAll(dir, 0o755)
	line := strconv.Itoa(pid) + " (zflow run) " + string(state) + " 1 1 1 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 " + strconv.FormatUint(start, 10) + " 1000 200\n"
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAlive(t *testing.T) {
	proc := t.TempDir()
	me := Owner{Space: 1, Boot: 2, PID: 100, Start: 500}
	writeStat(t, proc, 100, 'S', 500)
	writeStat(t, proc, 200, 'R', 600)
	writeStat(t, proc, 300, 'Z', 700)
	os.MkdirAll(filepath.Join(proc, "400", "stat"), 0o755) // unreadable: a directory
	o := func(space, boot uint32, pid int, start uint64) Owner {
		return Owner{Space: space, Boot: boot, PID: pid, Start: start}
	}
	tests := []struct {
		name    string
		meKnown bool
		o       Owner
		want    Liveness
	}{
		{"self", true, me, Live},
		{"another live process", true, o(1, 2, 200, 600), Live},
		{"recycled pid", true, o(1, 2, 200, 599), Dead},
		{"no such pid", true, o(1, 2, 999, 600), Dead},
		{"zombie", true, o(1, 2, 300, 700), Dead},
		{"previous boot", true, o(1, 3, 200, 600), Dead},
		{"another pid space", true, o(9, 2, 999, 600), Foreign},
		{"another pid space and boot", true, o(9, 3, 999, 600), Foreign},
		{"stat unreadable", true, o(1, 2, 400, 600), Live},
		{"owner without start time", true, o(1, 2, 999, 0), Live},
		{"own identity unknown", false, o(1, 2, 999, 600), Live},
		{"bad pid", true, o(1, 2, 0, 600), Live},
	}
	for _, tc := range tests {
		if got := alive(proc, me, tc.meKnown, tc.o); got != tc.want {
			t.Errorf("%s: alive(%+v) = %v, want %v", tc.name, tc.o, got, tc.want)
		}
	}
}

func TestSelf(t *testing.T) {
	me, err := Self()
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if me.PID != os.Getpid() || me.Start == 0 || me.Space == 0 {
		t.Fatalf("Self() = %+v", me)
	}
	if l := Alive(me); l != Live {
		t.Fatalf("Alive(self) = %v", l)
	}
	recycled := me
	recycled.Start++
	if l := Alive(recycled); l != Dead {
		t.Fatalf("Alive(recycled pid) = %v", l)
	}
}
