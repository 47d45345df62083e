package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fakeWorker is a worker's control side over loopback: it answers every
// run with done (or, die, drops the connection, as a pod that was
// deleted), and records what it was told.
type fakeWorker struct {
	index int
	pod   string
	l     net.Listener
	die   int    // the run (1, 2, …) in which it drops the connection
	fail  string // answer every run with failed
	mu    sync.Mutex
	got   []string
	done  chan struct{}
}

func startWorker(t *testing.T, token string, index int, pod string, die int, fail string) *fakeWorker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &fakeWorker{index: index, pod: pod, l: l, die: die, fail: fail, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		ctl, err := AwaitCoordinator(context.Background(), l, token, index, pod)
		if err != nil {
			return
		}
		defer ctl.Close()
		runs := 0
		for m := range ctl.Msgs {
			if m.Op == "run" {
				runs++
			}
			w.mu.Lock()
			w.got = append(w.got, fmt.Sprintf("%s%d", m.Op, m.Epoch))
			w.mu.Unlock()
			switch {
			case m.Op == "run" && runs == w.die:
				return
			case m.Op == "run" && w.fail != "":
				ctl.Send(ControlMsg{Op: "failed", Epoch: m.Epoch, Err: w.fail})
			case m.Op == "run":
				if len(m.Peers) != 3 || !strings.HasSuffix(m.Peers[index], fmt.Sprintf(":%d", DataPort)) {
					ctl.Send(ControlMsg{Op: "failed", Epoch: m.Epoch, Err: fmt.Sprintf("peers %v", m.Peers)})
					continue
				}
				ctl.Send(ControlMsg{Op: "done", Epoch: m.Epoch})
			case m.Op == "exit" || m.Op == "fail":
				return
			}
		}
	}()
	return w
}

func (w *fakeWorker) told() string {
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.got, " ")
}

// stageFor makes a stage whose dialer reaches the fake workers by pod
// "IP" (the pod's name).
func stageFor(t *testing.T, ws map[string]*fakeWorker, token string, exchanges ...string) *Stage {
	return stageN(t, 3, ws, token, exchanges...)
}

func stageN(t *testing.T, workers int, ws map[string]*fakeWorker, token string, exchanges ...string) *Stage {
	var mu sync.Mutex
	j := &Job{Workers: workers, Token: token, Exchanges: exchanges}
	s := &Stage{j: j, logf: t.Logf, ev: make(chan stageEvent, 64), failed: make(chan error, 1)}
	s.dial = func(ctx context.Context, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		mu.Lock()
		w := ws[host]
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, "tcp", w.l.Addr().String())
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.loop()
	return s
}

// lostPod runs three workers, loses worker 1's first pod in its first
// run and brings up its replacement; want holds, by pod, a pattern of
// what each was told.
func lostPod(t *testing.T, exchanges []string, want map[string]string) {
	t.Helper()
	const token = "00112233445566778899aabbccddeeff"
	ws := map[string]*fakeWorker{
		"p0":  startWorker(t, token, 0, "p0", 0, ""),
		"p1":  startWorker(t, token, 1, "p1", 1, ""),
		"p2":  startWorker(t, token, 2, "p2", 0, ""),
		"p1b": startWorker(t, token, 1, "p1b", 0, ""),
	}
	s := stageFor(t, ws, token, exchanges...)
	defer s.Close()
	for _, p := range []string{"p0", "p1", "p2"} {
		s.Pod(ws[p].index, p, p)
	}
	if got := ws["p1"].told(); !regexp.MustCompile(`^run[0-9]$`).MatchString(got) {
		t.Fatalf("p1 was told %q", got)
	}
	s.Gone(1, "p1")
	s.Pod(1, "p1b", "p1b")
	for p, pattern := range want {
		if got := ws[p].told(); !regexp.MustCompile(pattern).MatchString(got) {
			t.Errorf("%s was told %q, want %s", p, got, pattern)
		}
	}
	select {
	case err := <-s.Failed():
		t.Fatalf("the stage failed: %v", err)
	default:
	}
}

// TestStageReRunsAfterLostPod: with an exchange, worker 1's pod is lost
// in epoch 1; the others are told to abort, its replacement joins, and
// epoch 2 runs on all three to the end.
func TestStageReRunsAfterLostPod(t *testing.T) {
	defer goleak.VerifyNone(t)
	lostPod(t, []string{"spread"}, map[string]string{"p0": "^run1 abort1 run2 exit0$", "p2": "^run1 abort1 run2 exit0$", "p1b": "^run2 exit0$"})
}

// TestStageIndependentReRunsOneIndex: without an exchange, a lost pod's
// replacement runs its index again, and the others are not disturbed.
func TestStageIndependentReRunsOneIndex(t *testing.T) {
	defer goleak.VerifyNone(t)
	lostPod(t, nil, map[string]string{"p0": "^run[0-9] exit0$", "p2": "^run[0-9] exit0$", "p1b": "^run[0-9] exit0$"})
}

// TestStageFailsOnWorkerFailure: a worker that fails while no pod was
// lost fails the run, and every worker is told so.
func TestStageFailsOnWorkerFailure(t *testing.T) {
	defer goleak.VerifyNone(t)
	const token = "ffeeddccbbaa99887766554433221100"
	ws := map[string]*fakeWorker{
		"p0": startWorker(t, token, 0, "p0", 0, ""),
		"p1": startWorker(t, token, 1, "p1", 0, "bad row in part 3"),
		"p2": startWorker(t, token, 2, "p2", 0, ""),
	}
	s := stageFor(t, ws, token)
	defer s.Close()
	for _, p := range []string{"p0", "p1", "p2"} {
		s.Pod(ws[p].index, p, p)
	}
	select {
	case err := <-s.Failed():
		if !strings.Contains(err.Error(), "worker 1: bad row in part 3") {
			t.Fatalf("failure: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stage did not fail")
	}
	for p, w := range ws {
		if got := w.told(); !strings.HasSuffix(got, "fail0") {
			t.Errorf("%s was told %q", p, got)
		}
	}
}

// TestAwaitCoordinatorRefusesOtherToken: a connection without the run's
// token is turned away; the coordinator's is taken.
func TestAwaitCoordinatorRefusesOtherToken(t *testing.T) {
	defer goleak.VerifyNone(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		ctl, err := AwaitCoordinator(context.Background(), l, "right", 2, "p2")
		if err == nil {
			ctl.Close()
		}
		res <- err
	}()
	bad, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	writeControl(bad, ControlMsg{Op: "hello", Token: "wrong"})
	if n, _ := bad.Read(make([]byte, 1)); n != 0 {
		t.Fatal("a wrong token got an answer")
	}
	bad.Close()
	good, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	writeControl(good, ControlMsg{Op: "hello", Token: "right"})
	buf := make([]byte, 256)
	n, _ := good.Read(buf)
	if !strings.Contains(string(buf[:n]), `"index":2`) {
		t.Fatalf("answer %q", buf[:n])
	}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
}

// TestStageCloseWhileAnswering: the stage closes while a worker is still
// answering its hello; Close returns at once all the same (the
// connection is closed, not left to a reader nobody stops).
func TestStageCloseWhileAnswering(t *testing.T) {
	defer goleak.VerifyNone(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		var m ControlMsg
		readControl(r, &m)
		time.Sleep(300 * time.Millisecond) // a pod just starting
		writeControl(c, ControlMsg{Op: "hello", Index: 0})
		readControl(r, &m) // a live worker waits for its coordinator
	}()
	ws := map[string]*fakeWorker{"p0": {l: l}}
	s := stageN(t, 1, ws, "t")
	s.Pod(0, "p0", "p0")
	time.Sleep(100 * time.Millisecond)
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stage.Close still waiting after 5s")
	}
	<-workerDone
}
