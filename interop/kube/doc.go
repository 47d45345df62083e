// Package kube holds the cluster tests of make cluster-test: a real
// Kubernetes (etcd, kube-apiserver, kube-scheduler,
// kube-controller-manager, and a containerd and kubelet per host) on this
// one machine, its hosts network namespaces (cluster.sh), and zflow run
// --cluster kubernetes against it. The tests skip unless ZFLOW_KUBE=1,
// which make cluster-test sets after building what they need.
package kube
