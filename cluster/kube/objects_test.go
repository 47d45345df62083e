package kube

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/zflowdev/zflow/cluster"
)

func TestObjects(t *testing.T) {
	j := &cluster.Job{RunID: "zflow-t-abcde", Name: "t p/ü-", File: "p.yaml", Src: []byte("x"), Dir: "/d", Workers: 3,
		Namespace: "ns", Image: "img", HostPaths: []string{"/data"}, TTL: 10 * time.Minute,
		Env: map[string]string{"DATA": "/data/in"}, Hugepages: true, Pin: true, Threads: 2, Budget: 3<<30 + 1,
		Trace: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01", TraceFiles: true}
	job, cm := Objects(j, "")
	spec := job.Spec
	if *spec.Completions != 3 || *spec.Parallelism != 3 || *spec.BackoffLimitPerIndex != RetriesPerWorker ||
		*spec.MaxFailedIndexes != 0 || *spec.TTLSecondsAfterFinished != 600 || spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Fatalf("job spec: %+v", spec)
	}
	c := spec.Template.Spec.Containers[0]
	if got := strings.Join(c.Command, " "); got != "/zflow worker --run zflow-t-abcde --workers 3 --dir /d --trace-dir /data/.zflow-traces-zflow-t-abcde /etc/zflow/p.yaml" {
		t.Errorf("command: %s", got)
	}
	req, lim := c.Resources.Requests, c.Resources.Limits
	hp := req["hugepages-2Mi"]
	if hp.Value() != 3<<30+2<<20 || !hp.Equal(lim["hugepages-2Mi"]) {
		t.Errorf("hugepages: %v (limit %v), want the budget in whole 2 MiB pages", hp.String(), lim["hugepages-2Mi"])
	}
	if cpu := req[corev1.ResourceCPU]; cpu.Value() != 2 || !cpu.Equal(lim[corev1.ResourceCPU]) {
		t.Errorf("cpu: %v", cpu.String())
	}
	if m := req[corev1.ResourceMemory]; m.Value() != 4<<30+1 || !m.Equal(lim[corev1.ResourceMemory]) {
		t.Errorf("memory: %v (limit %v)", m.String(), lim[corev1.ResourceMemory])
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["DATA"] != "/data/in" || env[TraceparentEnv] != j.Trace || !strings.Contains(env["OTEL_RESOURCE_ATTRIBUTES"], "k8s.pod.name=$(POD_NAME)") {
		t.Errorf("env: %v", env)
	}
	if cm.Data["p.yaml"] != "x" || cm.Name != job.Name || len(cm.OwnerReferences) != 0 {
		t.Errorf("configmap: %+v", cm)
	}
	job.UID = "u1"
	Own(cm, job)
	if o := cm.OwnerReferences; len(o) != 1 || o[0].UID != "u1" || !*o[0].Controller {
		t.Errorf("owner: %+v", o)
	}
	j.TTL, j.Pin, j.Hugepages = 0, false, false
	job, _ = Objects(j, "")
	if job.Spec.TTLSecondsAfterFinished != nil || len(job.Spec.Template.Spec.Containers[0].Resources.Requests) != 0 {
		t.Errorf("ttl 0 and no pin or hugepages: %v %v", job.Spec.TTLSecondsAfterFinished, job.Spec.Template.Spec.Containers[0].Resources)
	}
	if v := job.Labels[LabelPipeline]; v != "t_p" {
		t.Errorf("pipeline label value %q, want t_p", v)
	}
}
