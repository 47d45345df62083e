package kube

import (
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/zflowdev/zflow/cluster"
	"github.com/zflowdev/zflow/internal/k8sname"
)

// Labels every object of a run carries.
const (
	LabelRun      = "zflow.dev/run"
	LabelPipeline = "zflow.dev/pipeline"
	// ConfigDir is where a worker finds the pipeline file.
	ConfigDir = "/etc/zflow"
	// Binary is zflow's path in the image make image builds.
	Binary = "/zflow"
	// RetriesPerWorker is how often a worker index is tried again after
	// its pod failed (backoffLimitPerIndex).
	RetriesPerWorker = 3
)

// Objects are the Kubernetes objects of a run: the Job and the ConfigMap
// holding the pipeline file. The ConfigMap names the Job as its owner
// once the Job exists (Own); as made here it has no owner, which is what
// a dry run or `kubectl apply` of them gets.
func Objects(j *cluster.Job, binary string) (*batchv1.Job, *corev1.ConfigMap) {
	if binary == "" {
		binary = Binary
	}
	labels := map[string]string{"app.kubernetes.io/name": "zflow", LabelRun: j.RunID, LabelPipeline: k8sname.Value(j.Name, 63, '_')}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: j.RunID, Namespace: j.Namespace, Labels: labels},
		Data:       map[string]string{j.File: string(j.Src)},
	}
	env := []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
	names := make([]string, 0, len(j.Env))
	for k := range j.Env {
		names = append(names, k)
	}
	slices.Sort(names)
	env = append(env, corev1.EnvVar{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		// The workers' spans say which pod and node they come from.
		corev1.EnvVar{Name: "OTEL_RESOURCE_ATTRIBUTES", Value: "k8s.pod.name=$(POD_NAME),k8s.node.name=$(NODE_NAME),k8s.job.name=" + j.RunID})
	if j.Trace != "" {
		env = append(env, corev1.EnvVar{Name: TraceparentEnv, Value: j.Trace})
	}
	if j.Token != "" {
		env = append(env, corev1.EnvVar{Name: TokenEnv, Value: j.Token})
	}
	for _, k := range names {
		env = append(env, corev1.EnvVar{Name: k, Value: j.Env[k]})
	}
	mounts := []corev1.VolumeMount{{Name: "pipeline", MountPath: ConfigDir, ReadOnly: true}}
	volumes := []corev1.Volume{{Name: "pipeline", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: j.RunID}}}}}
	dir := corev1.HostPathDirectory
	for i, h := range j.HostPaths {
		name := "host-" + strconv.Itoa(i)
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: h, Type: &dir}}})
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: h})
	}
	container := corev1.Container{
		Name:                     "worker",
		Image:                    j.Image,
		ImagePullPolicy:          corev1.PullIfNotPresent,
		Command:                  command(j, binary),
		Env:                      env,
		VolumeMounts:             mounts,
		Resources:                resources(j),
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
	}
	var failure *batchv1.PodFailurePolicy
	if j.Token != "" {
		// The coordinator drives the run over the control port; the
		// workers send each other rows on the data port (exchanges).
		container.Ports = []corev1.ContainerPort{{Name: "control", ContainerPort: cluster.ControlPort}, {Name: "data", ContainerPort: cluster.DataPort}}
		// A worker whose coordinator is gone fails the Job: nobody would
		// publish what its replacement made.
		failure = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
			Action: batchv1.PodFailurePolicyActionFailJob,
			OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
				ContainerName: &container.Name, Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{cluster.ExitCoordinatorLost}},
		}}}
	}
	workers := int32(j.Workers)
	retries := int32(RetriesPerWorker)
	mode := batchv1.IndexedCompletion
	no := false
	zero := int32(0)
	replaceFailed := batchv1.Failed
	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: j.RunID, Namespace: j.Namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			CompletionMode:       &mode,
			Completions:          &workers,
			Parallelism:          &workers,
			BackoffLimitPerIndex: &retries,
			// One index out of retries fails the Job at once; a failed
			// pod is replaced only once it has stopped, so two attempts of
			// an index never run together for long.
			MaxFailedIndexes:        &zero,
			PodReplacementPolicy:    &replaceFailed,
			TTLSecondsAfterFinished: ttlSeconds(j.TTL),
			PodFailurePolicy:        failure,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					AutomountServiceAccountToken: &no,
					EnableServiceLinks:           &no,
					Containers:                   []corev1.Container{container},
					Volumes:                      volumes,
					Affinity: &corev1.Affinity{NodeAffinity: nodeAffinity(j), PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
							Weight: 100,
							PodAffinityTerm: corev1.PodAffinityTerm{
								TopologyKey:   "kubernetes.io/hostname",
								LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelRun: j.RunID}},
							},
						}},
					}},
				},
			},
		},
	}
	return job, cm
}

// nodeAffinity requires the node labels the pipeline's placement needs
// (cluster.Job.Needs, labels of zflow topology --labels); nil for none.
func nodeAffinity(j *cluster.Job) *corev1.NodeAffinity {
	if len(j.Needs) == 0 {
		return nil
	}
	var exprs []corev1.NodeSelectorRequirement
	for _, n := range j.Needs {
		r := corev1.NodeSelectorRequirement{Key: n.Key, Operator: corev1.NodeSelectorOperator(n.Op)}
		if n.Value != "" {
			r.Values = []string{n.Value}
		}
		exprs = append(exprs, r)
	}
	return &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: exprs}}}}
}

// TokenEnv carries the run's token (cluster.Job.Token) to the workers of
// a run with exchanges across hosts.
const TokenEnv = "ZFLOW_MESH_TOKEN"

// TraceparentEnv carries the coordinator's span to the workers.
const TraceparentEnv = "ZFLOW_TRACEPARENT"

func command(j *cluster.Job, binary string) []string {
	c := []string{binary, "worker", "--run", j.RunID, "--workers", strconv.Itoa(j.Workers), "--dir", j.Dir}
	if j.TraceFiles {
		c = append(c, "--trace-dir", j.TraceDir())
	}
	return append(c, path.Join(ConfigDir, j.File))
}

// ttlSeconds is ttlSecondsAfterFinished for settings.cluster.ttl: unset
// (kept until deleted) for 0, at most what the field holds.
func ttlSeconds(d time.Duration) *int32 {
	if d <= 0 {
		return nil
	}
	s := int32(min(d.Seconds(), math.MaxInt32))
	return &s
}

// Own makes the Job cm's owner (controller), so that deleting the Job
// deletes the ConfigMap.
func Own(cm *corev1.ConfigMap, job *batchv1.Job) {
	yes := true
	cm.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID,
		Controller: &yes, BlockOwnerDeletion: &yes}}
}

// Sizes a worker asks for when the pipeline sets no memory budget: the
// hugepages of a hugepage arena, and the memory of a pinned (Guaranteed)
// worker, whose limit is hard.
const (
	DefaultHugepages    = 256 << 20
	DefaultPinnedMemory = 2 << 30
	// pinnedOverhead is what a pinned worker asks for beyond its budget:
	// the Go runtime, decoders' buffers, the heap the arena does not hold.
	pinnedOverhead = 1 << 30
)

// resources asks for what the pipeline's settings need of a node.
func resources(j *cluster.Job) corev1.ResourceRequirements {
	r := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	if j.Hugepages {
		// Hugepages must be requested with limits equal to requests,
		// beside a cpu or memory request: the budget's worth (in whole
		// 2 MiB pages), the arena's most.
		n := int64(DefaultHugepages)
		if j.Budget > 0 {
			n = (j.Budget + 2<<20 - 1) &^ (2<<20 - 1)
		}
		q := *resource.NewQuantity(n, resource.BinarySI)
		r.Requests["hugepages-2Mi"], r.Limits["hugepages-2Mi"] = q, q
		r.Requests[corev1.ResourceMemory] = resource.MustParse("256Mi")
	}
	if j.Pin {
		// Whole CPUs with requests equal to limits, memory too: the pod
		// is Guaranteed, and a kubelet with the static CPU manager policy
		// gives it exclusive cores. settings.threads says how many (auto
		// asks for one: the node's count is not known here).
		cpus := max(j.Threads, 1)
		q := resource.MustParse(strconv.Itoa(cpus))
		r.Requests[corev1.ResourceCPU], r.Limits[corev1.ResourceCPU] = q, q
		m := int64(DefaultPinnedMemory)
		if j.Budget > 0 {
			m = j.Budget + pinnedOverhead
		}
		mem := *resource.NewQuantity(m, resource.BinarySI)
		r.Requests[corev1.ResourceMemory], r.Limits[corev1.ResourceMemory] = mem, mem
	}
	if len(r.Requests) == 0 {
		return corev1.ResourceRequirements{}
	}
	return r
}

// String is a one-line account of what the Job asks for, for the plan.
func String(job *batchv1.Job) string {
	c := job.Spec.Template.Spec.Containers[0]
	res := "no resource requests"
	if len(c.Resources.Requests) > 0 {
		var parts []string
		for name, q := range c.Resources.Requests {
			parts = append(parts, fmt.Sprintf("%s %s", name, q.String()))
		}
		slices.Sort(parts)
		res = "requests " + strings.Join(parts, ", ")
	}
	return fmt.Sprintf("Indexed Job %s/%s: %d workers (image %s, %d retries per worker), %s",
		job.Namespace, job.Name, *job.Spec.Completions, c.Image, *job.Spec.BackoffLimitPerIndex, res)
}
