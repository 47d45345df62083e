package cluster

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A run with exchanges across hosts cannot let each worker finish on its
// own, as a run without them does: a worker restarted after a peer had
// already sent its rows and exited would wait for them forever. So the
// coordinator drives the exchange stage over a control connection to
// every worker (JSON lines on ControlPort, the run's token first):
//
//   - when every worker index has a live pod, it starts an epoch: "run"
//     with the epoch and every worker's data address (pod IP, DataPort);
//   - each worker runs the pipeline for that epoch, staging its output
//     under an attempt named after its pod and the epoch, and answers
//     "done" or "failed";
//   - when all are done it sends "exit": each worker writes its report
//     (naming the epoch's attempt) and exits 0, and the run publishes as
//     any other;
//   - when a worker's pod is lost during an epoch (its connection ends,
//     its pod failed or was deleted, or a new pod took its index), the
//     others get "abort", Kubernetes starts the replacement, and a new
//     epoch re-runs the whole stage from the input splits; what the
//     aborted epoch staged is never published;
//   - a worker that fails while no pod was lost has failed for a reason
//     another try does not cure: the run fails ("fail" to every worker),
//     and so does one whose exchange stage was lost MaxEpochs times.
//
// A worker whose coordinator connection ends exits with ExitCoordinatorLost,
// which the Job's pod failure policy turns into the Job's failure: its
// workers stop instead of waiting for a coordinator that is gone.

// The ports of a worker with exchanges.
const (
	ControlPort = 7600
	DataPort    = 7601
)

// MaxEpochs is how many times a run tries its exchange stage.
const MaxEpochs = 4

// ExitCoordinatorLost is a worker's exit code when its coordinator's
// control connection ended before the run did.
const ExitCoordinatorLost = 3

// ControlMsg is one line of the control protocol.
type ControlMsg struct {
	Op      string   `json:"op"` // hello, run, done, failed, abort, exit, fail
	Token   string   `json:"token,omitempty"`
	Index   int      `json:"index,omitempty"`
	Attempt string   `json:"attempt,omitempty"` // the worker's pod
	Epoch   uint64   `json:"epoch,omitempty"`
	Peers   []string `json:"peers,omitempty"`
	Err     string   `json:"err,omitempty"`
}

// maxControlLine bounds a control message.
const maxControlLine = 1 << 20

// WorkerControl is a worker's end of its coordinator's connection.
type WorkerControl struct {
	// Msgs delivers the coordinator's messages; it is closed when the
	// connection ends (Lost says why).
	Msgs <-chan ControlMsg
	conn net.Conn
	mu   sync.Mutex
	lost error
	done chan struct{}
}

// AwaitCoordinator accepts on l (and closes it) until a coordinator
// showing token connects (or ctx ends), answers its hello as worker
// index, attempt (its pod), and returns the connection.
func AwaitCoordinator(ctx context.Context, l net.Listener, token string, index int, attempt string) (*WorkerControl, error) {
	defer l.Close()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("cluster: control: waiting for the coordinator: %w", context.Cause(ctx))
			}
			return nil, fmt.Errorf("cluster: control: %w", err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReaderSize(c, 4096)
		var hello ControlMsg
		if err := readControl(r, &hello); err != nil || hello.Op != "hello" || subtle.ConstantTimeCompare([]byte(hello.Token), []byte(token)) != 1 {
			c.Close() // not our coordinator
			continue
		}
		if err := writeControl(c, ControlMsg{Op: "hello", Index: index, Attempt: attempt}); err != nil {
			c.Close()
			continue
		}
		c.SetDeadline(time.Time{})
		msgs := make(chan ControlMsg, 8)
		w := &WorkerControl{Msgs: msgs, conn: c, done: make(chan struct{})}
		go func() {
			defer close(msgs)
			for {
				var m ControlMsg
				if err := readControl(r, &m); err != nil {
					w.mu.Lock()
					w.lost = err
					w.mu.Unlock()
					return
				}
				select {
				case msgs <- m:
				case <-w.done:
					return
				}
			}
		}()
		return w, nil
	}
}

// Send sends m to the coordinator.
func (w *WorkerControl) Send(m ControlMsg) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return writeControl(w.conn, m)
}

// Lost says why the connection ended, once Msgs is closed.
func (w *WorkerControl) Lost() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost
}

// Close ends the connection.
func (w *WorkerControl) Close() error {
	select {
	case <-w.done:
		return nil
	default:
	}
	close(w.done)
	return w.conn.Close()
}

func writeControl(c net.Conn, m ControlMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = c.Write(append(b, '\n'))
	return err
}

func readControl(r *bufio.Reader, m *ControlMsg) error {
	var line []byte
	for {
		part, more, err := r.ReadLine()
		if err != nil {
			return err
		}
		line = append(line, part...)
		if len(line) > maxControlLine {
			return errors.New("control message too long")
		}
		if !more {
			break
		}
	}
	return json.Unmarshal(line, m)
}

// Stage is the coordinator's side of a run's exchange stage (see above).
// Pod and Gone tell it what the pod watch saw; Failed delivers the error
// that ends the run, if one does; the run succeeds as any other, when
// every worker has exited with its report after "exit".
type Stage struct {
	j      *Job
	logf   func(string, ...any)
	ev     chan stageEvent
	failed chan error
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// Dial connects to a worker's control port; nil is net.Dialer's.
	dial func(ctx context.Context, addr string) (net.Conn, error)
}

type stageEvent struct {
	kind  string // pod, gone, conn, lost, msg, grace
	index int
	pod   string
	ip    string
	c     *stageConn
	msg   ControlMsg
	err   error
	epoch uint64
}

type stageConn struct {
	index int
	pod   string
	ip    string
	conn  net.Conn
	mu    sync.Mutex
}

func (c *stageConn) send(m ControlMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if writeControl(c.conn, m) != nil {
		c.conn.Close() // the reader sees it and reports the loss
	}
}

// NewStage starts the coordinator's side of j's exchange stage.
func NewStage(ctx context.Context, j *Job, logf func(string, ...any)) *Stage {
	s := &Stage{j: j, logf: logf, ev: make(chan stageEvent, 64), failed: make(chan error, 1)}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go s.loop()
	return s
}

// Pod says worker index's pod runs at ip.
func (s *Stage) Pod(index int, pod, ip string) {
	if index >= 0 && index < s.j.Workers {
		s.post(stageEvent{kind: "pod", index: index, pod: pod, ip: ip})
	}
}

// Gone says worker index's pod failed, ended or was deleted.
func (s *Stage) Gone(index int, pod string) {
	if index >= 0 && index < s.j.Workers {
		s.post(stageEvent{kind: "gone", index: index, pod: pod})
	}
}

// Failed delivers the error that ends the run.
func (s *Stage) Failed() <-chan error { return s.failed }

// Close stops the stage and closes its connections.
func (s *Stage) Close() {
	s.cancel()
	s.wg.Wait()
}

func (s *Stage) post(e stageEvent) {
	select {
	case s.ev <- e:
	case <-s.ctx.Done():
	}
}

// graceAfterFailure is how long a worker's failure waits for news of a
// lost pod, which would make it a failure a new epoch cures.
const graceAfterFailure = 3 * time.Second

// graceAfterPeerFailure is that wait when the failure is an exchange's
// (exchangeErr in its message).
const graceAfterPeerFailure = 30 * time.Second

// exchangeErr starts the errors of an exchange between workers.
const exchangeErr = "repartition across hosts"

func (s *Stage) loop() {
	defer s.wg.Done()
	n := s.j.Workers
	// Without an exchange across hosts the workers do not depend on each
	// other: each runs as soon as its pod answers, and a lost pod's
	// replacement re-runs its index alone.
	independent := len(s.j.Exchanges) == 0 || n == 1
	conns := make([]*stageConn, n)
	var ending []*stageConn                    // connections of pods that are ending
	dialing := map[string]context.CancelFunc{} // by pod
	defer func() {
		for _, c := range append(conns, ending...) {
			if c != nil {
				c.conn.Close()
			}
		}
		for _, cancel := range dialing {
			cancel()
		}
	}()
	var (
		epoch    uint64 // the exchange stage's try; independent: runs sent
		running  = make([]bool, n)
		runEpoch = make([]uint64, n) // the epoch index i runs
		tries    = make([]int, n)    // independent: runs of index i
		finished bool                // exit sent
		done     = make([]bool, n)
		lost     = make([]bool, n) // the pod running index i was lost
		dead     bool
	)
	fatal := func(err error) {
		if dead {
			return
		}
		dead = true
		for _, c := range conns {
			if c != nil {
				c.send(ControlMsg{Op: "fail", Err: err.Error()})
			}
		}
		s.failed <- err
	}
	anyRunning := func() bool { return slices.Contains(running, true) }
	// abort ends the exchange stage's epoch on every worker.
	abort := func(reason string) {
		if !anyRunning() {
			return
		}
		clear(running)
		s.logf("exchange stage: epoch %d aborted: %s", epoch, reason)
		for _, c := range conns {
			if c != nil {
				c.send(ControlMsg{Op: "abort", Epoch: epoch})
			}
		}
		if epoch >= MaxEpochs {
			fatal(fmt.Errorf("cluster: the exchange stage was lost %d times, the last because %s; no output was published", epoch, reason))
		}
	}
	peers := func() []string {
		out := make([]string, n)
		for i, c := range conns {
			if c != nil {
				out[i] = net.JoinHostPort(c.ip, strconv.Itoa(DataPort))
			}
		}
		return out
	}
	start := func() {
		if finished || dead {
			return
		}
		if independent {
			for i, c := range conns {
				if c == nil || running[i] || done[i] {
					continue
				}
				if tries[i] > MaxEpochs-1 {
					fatal(fmt.Errorf("cluster: worker %d was lost %d times, the last because its pod %s was; no output was published", i, tries[i], c.pod))
					return
				}
				tries[i]++
				epoch++
				running[i], runEpoch[i], lost[i] = true, epoch, false
				c.send(ControlMsg{Op: "run", Epoch: epoch, Peers: peers()})
			}
			return
		}
		if anyRunning() || slices.Contains(conns, nil) {
			return
		}
		epoch++
		clear(done)
		clear(lost)
		s.logf("exchange stage: epoch %d: %d workers", epoch, n)
		p := peers()
		for i, c := range conns {
			running[i], runEpoch[i] = true, epoch
			c.send(ControlMsg{Op: "run", Epoch: epoch, Peers: p})
		}
	}
	// gone handles the loss of index i's pod (its connection ended, or a
	// new pod took its index).
	gone := func(i int, why string) {
		if finished || dead {
			return
		}
		if independent {
			if running[i] || done[i] {
				s.logf("worker %d: %s; its replacement runs it again", i, why)
			}
			running[i], done[i], lost[i] = false, false, true
			return
		}
		lost[i] = true
		abort(why)
	}
	for {
		var e stageEvent
		select {
		case <-s.ctx.Done():
			return
		case e = <-s.ev:
		}
		switch e.kind {
		case "pod":
			if _, ok := dialing[e.pod]; ok || (conns[e.index] != nil && conns[e.index].pod == e.pod) {
				continue
			}
			ctx, cancel := context.WithCancel(s.ctx)
			dialing[e.pod] = cancel
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.connect(ctx, e.index, e.pod, e.ip) }()
		case "gone":
			if cancel, ok := dialing[e.pod]; ok {
				cancel()
				delete(dialing, e.pod)
			}
			if c := conns[e.index]; c != nil && c.pod == e.pod {
				// Not closed: a worker still alive would take that for
				// its coordinator's death (and fail the Job). Its pod is
				// ending; the connection ends with it.
				conns[e.index] = nil
				ending = append(ending, c)
				gone(e.index, fmt.Sprintf("worker %d's pod %s was deleted or ended", e.index, e.pod))
			}
		case "conn":
			if _, ok := dialing[e.c.pod]; !ok {
				e.c.conn.Close() // its pod was gone before it answered
				continue
			}
			delete(dialing, e.c.pod)
			if finished || dead {
				e.c.conn.Close()
				if finished && !dead {
					fatal(fmt.Errorf("cluster: worker %d restarted (pod %s) after every worker had finished and been told to exit; no output was published: run it again", e.index, e.c.pod))
				}
				continue
			}
			old := conns[e.index]
			conns[e.index] = e.c
			if old != nil {
				old.conn.Close()
				gone(e.index, fmt.Sprintf("its pod %s was replaced by %s", old.pod, e.c.pod))
			}
			start()
		case "lost":
			if conns[e.index] != e.c {
				continue // an older pod's connection
			}
			conns[e.index] = nil
			gone(e.index, fmt.Sprintf("worker %d's pod %s was lost (%v)", e.index, e.c.pod, e.err))
		case "msg":
			i := e.index
			if conns[i] != e.c || !running[i] || e.msg.Epoch != runEpoch[i] {
				continue // of an aborted epoch
			}
			switch e.msg.Op {
			case "done":
				running[i], done[i] = false, true
				if !slices.Contains(done, false) {
					finished = true
					s.logf("every worker is done (%d runs); telling them to exit", epoch)
					for _, c := range conns {
						c.send(ControlMsg{Op: "exit"})
					}
				}
			case "failed":
				s.logf("worker %d failed (epoch %d): %s", i, runEpoch[i], e.msg.Err)
				ep, msg := runEpoch[i], e.msg.Err
				grace := graceAfterFailure
				if strings.Contains(msg, exchangeErr) {
					// It broke on a peer: a node that is lost or cut off
					// is seen to be gone (the pod watch, the control
					// connection's keepalive) only tens of seconds later.
					grace = graceAfterPeerFailure
				}
				time.AfterFunc(grace, func() {
					s.post(stageEvent{kind: "grace", index: i, epoch: ep, err: errors.New(msg)})
				})
			}
		case "grace":
			// A failure stands unless a pod was lost meanwhile (which
			// makes it the consequence of that loss): the exchange stage's
			// peers, or, independent, the worker's own pod.
			i := e.index
			if !running[i] || runEpoch[i] != e.epoch {
				continue
			}
			if independent || !slices.Contains(lost, true) {
				fatal(fmt.Errorf("cluster: worker %d: %v; no output was published", i, e.err))
			}
		}
	}
}

// connect dials worker index's control port until it answers (or ctx
// ends: the pod is gone), then reads its messages.
func (s *Stage) connect(ctx context.Context, index int, pod, ip string) {
	addr := net.JoinHostPort(ip, strconv.Itoa(ControlPort))
	dial := s.dial
	if dial == nil {
		dial = func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	var c net.Conn
	var r *bufio.Reader
	for {
		var err error
		if c, err = dial(ctx, addr); err == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			r = bufio.NewReaderSize(c, 4096)
			var hello ControlMsg
			err = writeControl(c, ControlMsg{Op: "hello", Token: s.j.Token})
			if err == nil {
				err = readControl(r, &hello)
			}
			if err == nil && (hello.Op != "hello" || hello.Index != index) {
				err = fmt.Errorf("answered %+v", hello)
			}
			if err == nil {
				c.SetDeadline(time.Time{})
				break
			}
			c.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Closed when the stage ends, whoever holds it then: its reader below
	// must not outlive the stage.
	stop := context.AfterFunc(s.ctx, func() { c.Close() })
	defer stop()
	sc := &stageConn{index: index, pod: pod, ip: ip, conn: c}
	s.post(stageEvent{kind: "conn", index: index, c: sc})
	for {
		var m ControlMsg
		if err := readControl(r, &m); err != nil {
			s.post(stageEvent{kind: "lost", index: index, c: sc, err: err})
			return
		}
		s.post(stageEvent{kind: "msg", index: index, c: sc, msg: m})
	}
}
