#!/usr/bin/env bash
# A real Kubernetes on this one machine, for make cluster-test: a control
# plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager) on a
# bridge in the root network namespace, and N "hosts", each a network
# namespace with its own containerd and kubelet, joined to the bridge by a
# veth pair. Pods get addresses from a per-host CIDR (CNI bridge +
# host-local) and reach the other hosts' pods through static routes. No
# registry: images are OCI tarballs imported into every host's containerd.
#
#   cluster.sh up N       start it (N hosts, 1..9), wait for the API server
#   cluster.sh import TAR import an image into every host's containerd
#   cluster.sh down       stop everything and remove what up made
#   cluster.sh env        print KUBECONFIG=... for a shell
#
# Each kubelet labels its node zflow.dev/host=zkhI, and with $ZK_LABELS
# (k=v,k=v: zflow topology --labels joined by commas) too.
#
# State lives in $ZK_DIR (default /tmp/zflow-kube): certificates, the
# kubeconfig (admin token), logs (logs/*.log), pids. Kubernetes binaries come
# from $ZK_BIN (make kube builds them into .cache/kube), etcd, containerd,
# runc and the CNI plugins from Debian (make kube installs them).
#
# This machine is cgroup v1 and lacks CAP_SYS_RESOURCE: containerd runs
# with restrict_oom_score_adj, kubelet with failCgroupV1: false and
# cgroupsPerQOS: false. Daemons enter a host's namespace with
# `nsenter --net` (ip netns exec would remount /sys and hide the cgroups).
set -euo pipefail

ZK_DIR=${ZK_DIR:-/tmp/zflow-kube}
ZK_BIN=${ZK_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/.cache/kube}
BR=zkbr0
NET=10.99.0
API=$NET.1
PORT=6443
CNI_BIN=/usr/lib/cni
PAUSE_IMAGE=zflow.local/pause:1

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }

start() { # name, command...: run in the background, log and pid kept
	local name=$1; shift
	"$@" > "$ZK_DIR/logs/$name.log" 2>&1 &
	echo "$! $name" >> "$ZK_DIR/pids"
}

ours() { # pid: still the process up started (not a reused pid)?
	tr '\0' ' ' < "/proc/$1/cmdline" 2> /dev/null | grep -qE "(etcd|kube-|kubelet|containerd).*($ZK_DIR|zflow-kube|zk)"
}

wait_for() { # seconds, description, command...
	local secs=$1 what=$2; shift 2
	local end=$((SECONDS + secs))
	until "$@" > /dev/null 2>&1; do
		if ((SECONDS >= end)); then
			die "$what not ready after ${secs}s (logs in $ZK_DIR/logs)"
		fi
		sleep 0.5
	done
}

pki() {
	local p=$ZK_DIR/pki
	mkdir -p "$p"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=zflow-kube-ca \
		-keyout "$p/ca.key" -out "$p/ca.crt" 2> /dev/null
	openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver \
		-keyout "$p/apiserver.key" -out "$p/apiserver.csr" 2> /dev/null
	printf 'subjectAltName=IP:%s,IP:127.0.0.1,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' "$API" > "$p/san.ext"
	openssl x509 -req -in "$p/apiserver.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
		-days 2 -extfile "$p/san.ext" -out "$p/apiserver.crt" 2> /dev/null
	openssl genrsa -out "$p/sa.key" 2048 2> /dev/null
	openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2> /dev/null
	# Static tokens: token,user,uid,"groups". AlwaysAllow authorizes them.
	: > "$p/tokens.csv"
	for who in admin scheduler controller-manager; do
		local t
		t=$(openssl rand -hex 16)
		echo "$t,$who,$who,\"system:masters\"" >> "$p/tokens.csv"
		kubeconfig "$who" "$t"
	done
	for ((i = 1; i <= HOSTS; i++)); do
		local t
		t=$(openssl rand -hex 16)
		echo "$t,system:node:zkh$i,zkh$i,\"system:nodes\"" >> "$p/tokens.csv"
		kubeconfig "zkh$i" "$t"
	done
}

kubeconfig() { # user, token: writes $ZK_DIR/$user.kubeconfig
	cat > "$ZK_DIR/$1.kubeconfig" << KC
apiVersion: v1
kind: Config
clusters:
- name: zflow-kube
  cluster:
    server: https://$API:$PORT
    certificate-authority: $ZK_DIR/pki/ca.crt
users:
- name: $1
  user:
    token: $2
contexts:
- name: zflow-kube
  context: {cluster: zflow-kube, user: $1}
current-context: zflow-kube
KC
}

network() {
	ip link add "$BR" type bridge
	ip addr add "$API/24" dev "$BR"
	ip link set "$BR" up
	for ((i = 1; i <= HOSTS; i++)); do
		local ns=zkh$i
		ip netns add "$ns"
		ip link add "zkv$i" type veth peer name eth0 netns "$ns"
		ip link set "zkv$i" master "$BR" up
		ip -n "$ns" addr add "$NET.1$i/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$ns" link set lo up
		ip -n "$ns" route add default via "$API"
		nsenter --net="/var/run/netns/$ns" sysctl -qw net.ipv4.ip_forward=1
		ip route add "10.244.$i.0/24" via "$NET.1$i"
	done
	for ((i = 1; i <= HOSTS; i++)); do
		for ((j = 1; j <= HOSTS; j++)); do
			((i == j)) || ip -n "zkh$i" route add "10.244.$j.0/24" via "$NET.1$j"
		done
	done
}

control_plane() {
	local p=$ZK_DIR/pki
	start etcd etcd --name zk --data-dir "$ZK_DIR/etcd" \
		--listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
		--listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
		--initial-cluster zk=http://127.0.0.1:23800
	wait_for 30 etcd curl -sf http://127.0.0.1:23790/health
	start kube-apiserver "$ZK_BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:23790 \
		--bind-address="$API" --advertise-address="$API" --secure-port=$PORT \
		--tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
		--client-ca-file="$p/ca.crt" --token-auth-file="$p/tokens.csv" --authorization-mode=AlwaysAllow \
		--service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
		--service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=10.96.0.0/16 \
		--allow-privileged=true --kubelet-preferred-address-types=InternalIP
	# With AlwaysAllow the API server turns anonymous requests off: ask
	# as admin.
	local token
	token=$(awk -F, '$2 == "admin" {print $1}' "$p/tokens.csv")
	wait_for 90 kube-apiserver curl -sf --cacert "$p/ca.crt" -H "Authorization: Bearer $token" "https://$API:$PORT/readyz"
	start kube-scheduler "$ZK_BIN/kube-scheduler" --kubeconfig="$ZK_DIR/scheduler.kubeconfig" \
		--leader-elect=false --bind-address=127.0.0.1 --secure-port=10259
	start kube-controller-manager "$ZK_BIN/kube-controller-manager" \
		--kubeconfig="$ZK_DIR/controller-manager.kubeconfig" --leader-elect=false \
		--bind-address=127.0.0.1 --secure-port=10257 \
		--service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
		--cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
		--controllers='*'
}

host() { # i: containerd and kubelet of host zkh$i
	local i=$1 ns=zkh$i d=$ZK_DIR/zkh$i
	mkdir -p "$d/cni" "$d/kubelet"
	cat > "$d/containerd.toml" << CT
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$d/cni"
CT
	cat > "$d/cni/10-zk.conflist" << CN
{"cniVersion": "1.0.0", "name": "zk", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.$i.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$d/ipam"}},
  {"type": "loopback"}]}
CN
	cat > "$d/kubelet.yaml" << KL
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NET.1$i
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$d/containerd.sock
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
localStorageCapacityIsolation: false
maxPods: 40
resolvConf: ""
podCIDR: 10.244.$i.0/24
KL
	start "containerd-$ns" nsenter --net="/var/run/netns/$ns" containerd --config "$d/containerd.toml"
	wait_for 30 "containerd of $ns" test -S "$d/containerd.sock"
}

kubelet() { # i
	local i=$1 ns=zkh$i d=$ZK_DIR/zkh$i
	start "kubelet-$ns" nsenter --net="/var/run/netns/$ns" "$ZK_BIN/kubelet" \
		--config="$d/kubelet.yaml" --kubeconfig="$ZK_DIR/$ns.kubeconfig" \
		--root-dir="$d/kubelet" --cert-dir="$d/kubelet/pki" \
		--hostname-override="$ns" --node-ip="$NET.1$i" \
		--node-labels="zflow.dev/host=$ns${ZK_LABELS:+,$ZK_LABELS}"
}

import() { # tar
	local tar=$1
	[ -f "$tar" ] || die "import: no file $tar"
	for d in "$ZK_DIR"/zkh*/; do
		ctr -a "$d/containerd.sock" -n k8s.io images import --no-unpack=false "$tar" > /dev/null ||
			die "import: $tar into $(basename "$d") failed"
	done
}

up() {
	HOSTS=${1:-3}
	[[ $HOSTS =~ ^[1-9]$ ]] || die "up: the number of hosts is 1..9, not $HOSTS"
	for b in kube-apiserver kube-scheduler kube-controller-manager kubelet; do
		[ -x "$ZK_BIN/$b" ] || die "no $ZK_BIN/$b: make kube builds the Kubernetes binaries"
	done
	for b in curl openssl nsenter ip; do
		command -v "$b" > /dev/null || die "no $b: install curl, openssl, util-linux and iproute2"
	done
	for b in etcd containerd runc ctr "$CNI_BIN/bridge"; do
		command -v "$b" > /dev/null || die "no $b: make kube installs etcd-server, containerd, runc, containernetworking-plugins"
	done
	down # what an earlier run left (its processes, namespaces, bridge)
	if [ -e "$ZK_DIR" ] && [ ! -f "$ZK_DIR/.zflow-kube" ]; then
		die "up: $ZK_DIR exists and is not a cluster's state directory: choose another ZK_DIR"
	fi
	mkdir -p "$ZK_DIR/logs"
	touch "$ZK_DIR/.zflow-kube"
	: > "$ZK_DIR/pids"
	ls /var/run/netns 2> /dev/null > "$ZK_DIR/netns-before" || true
	echo "$HOSTS" > "$ZK_DIR/hosts"
	pki
	network
	control_plane
	for ((i = 1; i <= HOSTS; i++)); do
		host "$i"
	done
	if [ -n "${ZK_IMAGES:-}" ]; then
		for t in $ZK_IMAGES; do import "$t"; done
	fi
	for ((i = 1; i <= HOSTS; i++)); do
		kubelet "$i"
	done
	say "up: $HOSTS hosts; KUBECONFIG=$ZK_DIR/admin.kubeconfig"
}

down() {
	if [ -f "$ZK_DIR/pids" ]; then
		# Kubelets first (they restart containers), then containerd (its
		# shims go with SIGTERM to the containers), then the control plane.
		tac "$ZK_DIR/pids" | while read -r pid name; do
			if ours "$pid"; then kill "$pid" 2> /dev/null || true; fi
		done
		sleep 1
		tac "$ZK_DIR/pids" | while read -r pid name; do
			if ours "$pid"; then kill -9 "$pid" 2> /dev/null || true; fi
		done
	fi
	# Shims and containers outlive containerd: end every process whose
	# shim socket or bundle lives under this cluster's state.
	pkill -9 -f "containerd-shim-runc-v2 .*-address $ZK_DIR/" 2> /dev/null || true
	for ((i = 1; i <= 9; i++)); do
		if [ -e "/var/run/netns/zkh$i" ]; then
			# Whatever still runs in the host's namespace (containers).
			for pid in $(ip netns pids "zkh$i" 2> /dev/null); do kill -9 "$pid" 2> /dev/null || true; done
			ip netns del "zkh$i" 2> /dev/null || true
		fi
		ip route del "10.244.$i.0/24" 2> /dev/null || true
	done
	ip link del "$BR" 2> /dev/null || true
	# The pods' network namespaces (containerd's cni-*), made since up.
	if [ -f "$ZK_DIR/netns-before" ]; then
		for n in $(ls /var/run/netns 2> /dev/null | grep '^cni-'); do
			grep -qx "$n" "$ZK_DIR/netns-before" || ip netns del "$n" 2> /dev/null || true
		done
	fi
	if [ -f "$ZK_DIR/.zflow-kube" ]; then # only a directory up made
		{ grep -F " $ZK_DIR/" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do
			umount -l "$m" 2> /dev/null || true
		done
		rm -rf "$ZK_DIR"
	fi
}

case "${1:-}" in
up) up "${2:-3}" ;;
import) import "${2:?import TAR}" ;;
down) down ;;
env) echo "KUBECONFIG=$ZK_DIR/admin.kubeconfig" ;;
*) die "usage: cluster.sh up N | import TAR | down | env" ;;
esac
