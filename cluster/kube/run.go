package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/zflowdev/zflow/cluster"
	"github.com/zflowdev/zflow/engine"
)

// Options tune Run.
type Options struct {
	// Binary is zflow's path in the workers' image ("" is Binary).
	Binary string
	// Log gets a line per change of a worker (scheduled, running,
	// succeeded, failed and retried); nil discards them.
	Log io.Writer
	// Keep leaves the Job (and its pods) in place after the run, for
	// inspection; Kubernetes still deletes it after settings.cluster.ttl.
	Keep bool
	// Poll is how often the Job's status is read besides the pod watch
	// (0 is 500ms).
	Poll time.Duration
}

// Result is what a run did.
type Result struct {
	Summary engine.Summary   // summed over the workers (cluster.Merge)
	Reports []cluster.Report // the winning attempt's of each worker index
	Nodes   []string         // the node each worker's winning attempt ran on
	Pods    int              // pods Kubernetes ran: Workers plus retries
}

// CompletionIndex is the annotation Kubernetes puts on an Indexed Job's
// pods.
const CompletionIndex = "batch.kubernetes.io/job-completion-index"

// Run runs j on the cluster cs talks to and publishes its output; it
// returns when the Job has completed and the output is published, or it
// failed (a worker index ran out of retries), or ctx ended. In every case
// but success with Options.Keep it deletes the Job, which deletes its pods
// and ConfigMap; on failure it discards what the workers staged.
func Run(ctx context.Context, cs kubernetes.Interface, j *cluster.Job, o Options) (res *Result, err error) {
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	logf := func(format string, args ...any) { fmt.Fprintf(logw, "zflow: cluster: "+format+"\n", args...) }
	poll := o.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	job, cm := Objects(j, o.Binary)
	jobs := cs.BatchV1().Jobs(j.Namespace)
	created, err := jobs.Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("cluster: create job %s/%s: %w", j.Namespace, job.Name, err)
	}
	published := false
	defer func() {
		if published && o.Keep {
			return
		}
		// Delete the Job and wait for its pods to be gone before the
		// staging is removed: a pod still stopping (a duplicate attempt,
		// or every pod of a failed run) would make it again.
		bg := context.WithoutCancel(ctx)
		fg := metav1.DeletePropagationForeground
		var problems []error
		if derr := jobs.Delete(bg, created.Name, metav1.DeleteOptions{PropagationPolicy: &fg}); derr != nil {
			problems = append(problems, fmt.Errorf("cluster: delete job %s (Kubernetes deletes it after %v): %w", created.Name, j.TTL, derr))
		} else if werr := podsGone(bg, cs, j, 2*time.Minute); werr != nil {
			problems = append(problems, werr)
		}
		if derr := j.Discard(); derr != nil {
			problems = append(problems, derr)
		}
		switch {
		case len(problems) == 0:
		case published:
			// The output is in place: what is left over is a warning.
			for _, p := range problems {
				logf("warning: the output is published, but %v", p)
			}
		default:
			err = errors.Join(append([]error{err}, problems...)...)
		}
	}()
	Own(cm, created)
	if _, err := cs.CoreV1().ConfigMaps(j.Namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("cluster: create configmap %s/%s: %w", j.Namespace, cm.Name, err)
	}
	logf("job %s/%s: %d workers, image %s", j.Namespace, created.Name, j.Workers, j.Image)

	w := &watcher{j: j, logf: logf, pods: map[string]*podState{}}
	var stageFailed <-chan error
	if j.Token != "" {
		// Exchanges across hosts: the coordinator drives the stage.
		w.stage = cluster.NewStage(ctx, j, logf)
		defer w.stage.Close()
		stageFailed = w.stage.Failed()
	}
	sel := metav1.ListOptions{LabelSelector: LabelRun + "=" + j.RunID}
	var events <-chan watch.Event
	var wi watch.Interface
	defer func() {
		if wi != nil {
			wi.Stop()
		}
	}()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if wi == nil {
			// (Re)start the watch from a fresh list, so no change between
			// two watches is lost.
			list, err := cs.CoreV1().Pods(j.Namespace).List(ctx, sel)
			if err != nil {
				return nil, fmt.Errorf("cluster: list the run's pods: %w", err)
			}
			for i := range list.Items {
				w.update(&list.Items[i])
			}
			sel.ResourceVersion = list.ResourceVersion
			if wi, err = cs.CoreV1().Pods(j.Namespace).Watch(ctx, sel); err != nil {
				return nil, fmt.Errorf("cluster: watch the run's pods: %w", err)
			}
			sel.ResourceVersion = ""
			events = wi.ResultChan()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster: run %s: %w", j.RunID, context.Cause(ctx))
		case err := <-stageFailed:
			return nil, err
		case ev, ok := <-events:
			if !ok {
				wi.Stop()
				wi = nil
				continue
			}
			if p, ok := ev.Object.(*corev1.Pod); ok {
				w.update(p)
				if ev.Type == watch.Deleted {
					w.gone(p)
				}
			}
			if !w.allSucceeded() && w.fatal == nil {
				continue
			}
			// Every index has a pod that succeeded with its report: the
			// output is complete, whatever the Job controller has noticed
			// yet (it would mark the Job complete next).
		case <-tick.C:
		}
		if err := w.stuck(); err != nil {
			return nil, err
		}
		complete := w.allSucceeded()
		var cur *batchv1.Job
		if !complete {
			if cur, err = jobs.Get(ctx, created.Name, metav1.GetOptions{}); err != nil {
				return nil, fmt.Errorf("cluster: read job %s: %w", created.Name, err)
			}
		}
		switch {
		case complete || condition(cur, batchv1.JobComplete) || condition(cur, batchv1.JobSuccessCriteriaMet):
			if !complete {
				// The last pods' final states may not have reached the
				// watch yet: read them all once more.
				list, err := cs.CoreV1().Pods(j.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelRun + "=" + j.RunID})
				if err != nil {
					return nil, fmt.Errorf("cluster: list the run's pods: %w", err)
				}
				for i := range list.Items {
					w.update(&list.Items[i])
				}
			}
			res, err := w.result()
			if err != nil {
				return nil, err
			}
			winners := make([]string, j.Workers)
			for i, r := range res.Reports {
				winners[i] = r.Attempt
			}
			if err := j.Publish(winners); err != nil {
				return nil, err
			}
			published = true
			logf("published the output of %d workers (%d pods ran)", j.Workers, res.Pods)
			return res, nil
		case condition(cur, batchv1.JobFailed):
			return nil, w.failure(cur)
		}
	}
}

// podsGone waits until no pod of the run is left.
func podsGone(ctx context.Context, cs kubernetes.Interface, j *cluster.Job, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		list, err := cs.CoreV1().Pods(j.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelRun + "=" + j.RunID})
		if err == nil && len(list.Items) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			n := -1
			if list != nil {
				n = len(list.Items)
			}
			return fmt.Errorf("cluster: %d pods of run %s still there %v after the job's deletion (%v)", n, j.RunID, limit, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func condition(job *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range job.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// podState is what the coordinator last saw of a pod.
type podState struct {
	unschedulable time.Time // since when, zero if not
	why           string    // the scheduler's message
	index         int
	node          string
	phase         corev1.PodPhase
	report        *cluster.Report
	reason        string // why it failed
}

type watcher struct {
	j    *cluster.Job
	logf func(string, ...any)
	pods map[string]*podState
	// fatal is why the run cannot succeed although the Job has not
	// failed (yet): a pod that cannot start, or stays unschedulable.
	fatal error
	stage *cluster.Stage // a run with exchanges; nil otherwise
}

// gone tells the exchange stage a worker pod is gone.
func (w *watcher) gone(p *corev1.Pod) {
	if idx, err := strconv.Atoi(p.Annotations[CompletionIndex]); err == nil && w.stage != nil {
		w.stage.Gone(idx, p.Name)
	}
}

// cannotStart are the reasons a container waits that retries do not
// cure.
var cannotStart = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "ErrImageNeverPull": true,
	"InvalidImageName": true, "CreateContainerConfigError": true, "CreateContainerError": true}

// Unschedulable is how long a worker pod may stay unschedulable before
// the run gives up.
const Unschedulable = 2 * time.Minute

func (w *watcher) update(p *corev1.Pod) {
	idx, err := strconv.Atoi(p.Annotations[CompletionIndex])
	if err != nil || idx < 0 || idx >= w.j.Workers {
		return // not a worker of this run
	}
	s, seen := w.pods[p.Name]
	if !seen {
		s = &podState{index: idx}
		w.pods[p.Name] = s
	}
	for _, c := range p.Status.ContainerStatuses {
		if wt := c.State.Waiting; wt != nil && cannotStart[wt.Reason] && w.fatal == nil {
			w.fatal = fmt.Errorf("cluster: worker %d: pod %s cannot start: %s: %s; no output was published", idx, p.Name, wt.Reason, wt.Message)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			if s.unschedulable.IsZero() {
				s.unschedulable = time.Now()
				w.logf("worker %d: pod %s unschedulable: %s", idx, p.Name, c.Message)
			}
			s.why = c.Message
		}
	}
	if p.Spec.NodeName != "" {
		s.unschedulable = time.Time{}
	}
	if w.stage != nil {
		switch {
		case p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
			w.stage.Gone(idx, p.Name)
		case p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "":
			w.stage.Pod(idx, p.Name, p.Status.PodIP)
		}
	}
	if p.Spec.NodeName != "" && s.node == "" {
		s.node = p.Spec.NodeName
		w.logf("worker %d: pod %s on node %s", idx, p.Name, s.node)
	}
	if p.Status.Phase == s.phase && (s.phase != corev1.PodSucceeded || s.report != nil) {
		return // nothing new (a succeeded pod is read again until its report is)
	}
	s.phase = p.Status.Phase
	term := terminated(p)
	switch s.phase {
	case corev1.PodRunning:
		w.logf("worker %d: pod %s running", idx, p.Name)
	case corev1.PodSucceeded:
		if term == nil {
			s.reason = "succeeded without a termination state"
			return
		}
		r, err := cluster.DecodeReport([]byte(term.Message))
		if err != nil {
			s.reason = fmt.Sprintf("succeeded but its report is unreadable: %v", err)
			w.logf("worker %d: pod %s %s", idx, p.Name, s.reason)
			return
		}
		s.report = &r
		w.logf("worker %d: pod %s succeeded in %v", idx, p.Name, time.Duration(r.Elapsed).Round(time.Millisecond))
	case corev1.PodFailed:
		s.reason = p.Status.Reason
		if term != nil {
			s.reason = strings.TrimSpace(fmt.Sprintf("%s (exit %d) %s", term.Reason, term.ExitCode, reportErr(term.Message)))
		}
		if s.reason == "" {
			s.reason = p.Status.Message
		}
		w.logf("worker %d: pod %s failed: %s", idx, p.Name, s.reason)
	}
}

// reportErr is the error a failed worker's report states, or the message
// as it is.
func reportErr(msg string) string {
	if r, err := cluster.DecodeReport([]byte(msg)); err == nil && r.Err != "" {
		return r.Err
	}
	return msg
}

func terminated(p *corev1.Pod) *corev1.ContainerStateTerminated {
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Terminated != nil {
			return c.State.Terminated
		}
	}
	return nil
}

// stuck is w.fatal, or an error if a pod has been unschedulable for
// longer than Unschedulable.
func (w *watcher) stuck() error {
	if w.fatal != nil {
		return w.fatal
	}
	for n, s := range w.pods {
		if !s.unschedulable.IsZero() && time.Since(s.unschedulable) > Unschedulable {
			return fmt.Errorf("cluster: worker %d: pod %s unschedulable for %v: %s; no output was published", s.index, n, Unschedulable, s.why)
		}
	}
	return nil
}

// allSucceeded says every worker index has a pod that succeeded with a
// report.
func (w *watcher) allSucceeded() bool {
	have := make([]bool, w.j.Workers)
	n := 0
	for _, s := range w.pods {
		if s.phase == corev1.PodSucceeded && s.report != nil && !have[s.index] {
			have[s.index] = true
			n++
		}
	}
	return n == w.j.Workers
}

// result is the run's outcome once the Job completed: for each index the
// first attempt that succeeded with a readable report.
func (w *watcher) result() (*Result, error) {
	res := &Result{Reports: make([]cluster.Report, w.j.Workers), Nodes: make([]string, w.j.Workers), Pods: len(w.pods)}
	names := make([]string, 0, len(w.pods))
	for n := range w.pods {
		names = append(names, n)
	}
	slices.Sort(names)
	have := make([]bool, w.j.Workers)
	for _, n := range names {
		s := w.pods[n]
		if s.phase != corev1.PodSucceeded || s.report == nil || have[s.index] {
			continue
		}
		// A worker of a run with exchanges names its attempt after its
		// pod and the epoch it finished (pod-eN).
		if s.report.Index != s.index || (s.report.Attempt != n && !strings.HasPrefix(s.report.Attempt, n+"-e")) {
			return nil, fmt.Errorf("cluster: pod %s (worker %d) reported worker %d, attempt %s", n, s.index, s.report.Index, s.report.Attempt)
		}
		have[s.index] = true
		res.Reports[s.index], res.Nodes[s.index] = *s.report, s.node
	}
	for i, ok := range have {
		if !ok {
			return nil, fmt.Errorf("cluster: the job completed, but no pod of worker %d succeeded with a report", i)
		}
	}
	res.Summary = cluster.Merge(w.j.Name, res.Reports)
	return res, nil
}

// failure says why the Job failed: its condition and each failed pod.
func (w *watcher) failure(job *batchv1.Job) error {
	msg := "failed"
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed {
			msg = strings.TrimSpace(c.Reason + ": " + c.Message)
		}
	}
	var lines []string
	for n, s := range w.pods {
		if s.phase == corev1.PodFailed {
			lines = append(lines, fmt.Sprintf("worker %d pod %s: %s", s.index, n, s.reason))
		}
	}
	slices.Sort(lines)
	return fmt.Errorf("cluster: job %s %s; no output was published\n  %s", job.Name, msg, strings.Join(lines, "\n  "))
}
