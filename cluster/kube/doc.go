// Package kube runs a cluster.Job on Kubernetes through client-go: the
// coordinator side of zflow run --cluster kubernetes.
//
// A run is one Indexed Job (batch/v1, completionMode Indexed): completion
// index i is worker i, restartPolicy Never and backoffLimitPerIndex, so a
// worker pod that dies is replaced by a new pod, a new attempt, for that
// index alone. Its pods read the pipeline file from a ConfigMap owned by
// the Job, so deleting the Job deletes everything the run made (the
// garbage collector follows the owner references); ttlSecondsAfterFinished
// has Kubernetes delete a finished Job whose coordinator never came back
// to. Workers are spread over nodes (pod anti-affinity on the host name),
// mount settings.cluster.host_paths at the same paths, and ask for what
// the pipeline's settings need of a node: hugepages-2Mi for a hugepage
// arena, whole CPUs with requests equal to limits (Guaranteed QoS, which
// the kubelet's static CPU manager gives exclusive cores) for pin: true.
//
// The coordinator watches the run's pods, reads each finished worker's
// report from its termination message (cluster.Report), publishes the
// output when every index has succeeded (cluster.Job.Publish) and deletes
// the Job; on failure or cancellation it deletes the Job and discards the
// staged output.
package kube
