# zflow — the first two targets are the README's first two commands.
#   make run   builds zflow and runs pipelines/examples/quickstart.yaml on generated data
#   make test  installs what the tests need, then runs every test with -race

GO        ?= go
BIN       := bin/zflow
GOFLAGS_T ?= -race -count=1 -timeout 20m

# -checklinkname=0, only where io/uring is linked. The io_uring backend
# (io/uring) uses giouring, which pulls syscall.munmap through go:linkname;
# Go >= 1.23 links that only with -ldflags=-checklinkname=0. That flag turns
# the check off for the whole binary, so only binaries and test binaries
# that depend on io/uring get it, found with go list (nothing while io/uring
# does not exist):
#   uring_tests  the packages among $(1) whose test binary, or command,
#                links io/uring: `go test` runs them with the flag, the rest
#                without (go list -test: each PKG.test main and its Deps);
#   uring_ldflags  -ldflags=-checklinkname=0 when the binary $(1) links
#                io/uring (go list -deps), else nothing;
#   uring_test_ldflags  the same for the test binaries of $(1).
# interop/guest/run.sh decides the same way for its static binaries.
URING    := github.com/zflowdev/zflow/io/uring
LINKNAME := -checklinkname=0
uring_tests = $(shell $(GO) list -test -f '{{if and (eq .Name "main") (not .ForTest)}}{{range .Deps}}{{$$.ImportPath}}|{{.}}{{"\n"}}{{end}}{{end}}' $(1) \
	| grep -E '\|$(URING)( \[|$$)' | cut -d'|' -f1 | sed 's/\.test$$//' | sort -u)
uring_ldflags = $(if $(shell $(GO) list -deps $(1) | grep -x '$(URING)'),-ldflags='$(LINKNAME)')
uring_test_ldflags = $(if $(call uring_tests,$(1)),-ldflags='$(LINKNAME)')

# The other platforms the module must build and vet on (make cross): there
# arenas fall back to the Go heap and topology says what it cannot read.
CROSS := darwin/arm64 windows/amd64

.PHONY: run test build deps duckdb vet cross jaeger image kube cluster-test fuzz bench bench-overhead bench-tracing bench-arena bench-duckdb bench-stateful bench-net bench-io bench-shm bench-nvmeof bench-rdma bench-cluster interop clean

run: build
	$(BIN) run pipelines/examples/quickstart.yaml

build: deps
	$(GO) build $(call uring_ldflags,./cmd/zflow) -o $(BIN) ./cmd/zflow

# Everything the tests need on a fresh machine: Go modules and the Debian
# packages listed in APT_PACKAGES: tshark (with dumpcap) for checklist
# item 35 of docs/nvme-tcp.md, Wireshark's nvme-tcp dissector reading a
# capture of our initiator and target (nvmeof/target). Its debconf
# question (may non-root users capture?) is answered "no" beforehand so
# the install does not stop to ask.
APT_PACKAGES := tshark
deps:
	$(GO) mod download
	@if [ -n "$(APT_PACKAGES)" ]; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  fi; \
	fi

# DuckDB for the oracle tests (internal/duckdbtest: the expression language,
# sinks and sources checked against DuckDB): node and npm from Debian when
# node is missing, then the npm packages pinned by bench/duckdb's
# package-lock.json (@duckdb/node-api, apache-arrow; ~2 s), again whenever
# the lock file is newer than what npm installed. `make test` requires it (ZFLOW_REQUIRE_DUCKDB=1:
# a test that cannot reach DuckDB fails instead of skipping).
duckdb:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; \
	fi
	@if [ ! -f bench/duckdb/node_modules/.package-lock.json ] || [ bench/duckdb/package-lock.json -nt bench/duckdb/node_modules/.package-lock.json ]; then \
	  echo "cd bench/duckdb && npm ci"; \
	  cd bench/duckdb && npm ci --no-audit --no-fund --loglevel=error; \
	fi

vet: deps
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bench/duckdb/*')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

# GOOS=darwin GOARCH=arm64 and GOOS=windows GOARCH=amd64 go build ./... and
# go vet ./... (test files included), with GOFLAGS cleared (-race cannot
# cross-compile). Under a minute on 2 cores with a warm cache.
cross: deps
	@for p in $(CROSS); do \
	  echo "GOOS=$${p%/*} GOARCH=$${p#*/} go build ./... && go vet ./..."; \
	  GOFLAGS= GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build ./... && \
	  GOFLAGS= GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./... || exit 1; \
	done

# The cross builds, the Go tests (against a real Jaeger for the telemetry
# integration test; packages that link io/uring in a second run with
# -checklinkname=0), then the multi-node NUMA checks in a QEMU guest (make
# interop). DuckDB must be there for the oracle tests (ZFLOW_REQUIRE_DUCKDB=1).
test: deps duckdb vet cross jaeger
	$(eval URING_TESTS := $(call uring_tests,./...))
	ZFLOW_REQUIRE_DUCKDB=1 ZFLOW_JAEGER=$(CURDIR)/$(JAEGER) $(GO) test $(GOFLAGS_T) $(or $(filter-out $(URING_TESTS),$(shell $(GO) list ./...)),./...)
	$(if $(URING_TESTS),ZFLOW_REQUIRE_DUCKDB=1 ZFLOW_JAEGER=$(CURDIR)/$(JAEGER) $(GO) test $(GOFLAGS_T) -ldflags='$(LINKNAME)' $(URING_TESTS))
	$(MAKE) interop
	$(MAKE) cluster-test

# A real OTLP receiver for the telemetry integration test: Jaeger v2 (an
# OpenTelemetry Collector distribution: OTLP gRPC/HTTP in, memory store,
# query API), built from the pinned module in tools/jaeger (go install
# refuses its replace directives). The first build takes ~10 minutes on 2
# cores; the binary is cached under .cache/, which this Makefile owns.
JAEGER := .cache/jaeger/jaeger
jaeger: $(JAEGER)
$(JAEGER): tools/jaeger/go.mod tools/jaeger/go.sum
	mkdir -p $(dir $(JAEGER))
	cd tools/jaeger && $(GO) build -trimpath -o $(CURDIR)/$(JAEGER).tmp github.com/jaegertracing/jaeger/cmd/jaeger
	mv $(JAEGER).tmp $(JAEGER)

# A FROM-scratch OCI image of a static zflow (CGO_ENABLED=0), written as an
# OCI image layout tar by tools/mkimage without a container daemon, for
# `ctr -n k8s.io images import out/zflow-image.tar` on each Kubernetes host.
IMAGE      := out/zflow-image.tar
IMAGE_NAME ?= zflow.local/zflow:dev
image: deps
	CGO_ENABLED=0 $(GO) build -trimpath $(call uring_ldflags,./cmd/zflow) -o bin/zflow-static ./cmd/zflow
	$(GO) run ./tools/mkimage -o $(IMAGE) -name $(IMAGE_NAME) -file /zflow=bin/zflow-static -dir /tmp -entrypoint /zflow

# The Kubernetes the cluster tests run (interop/kube/cluster.sh): the
# control plane and kubelet built from the pinned module in tools/kube
# (v1.37.2; go install refuses its replace directives) into .cache/kube
# once (~15 minutes cold on 2 cores, then seconds), and etcd, containerd,
# runc and the CNI plugins from Debian.
KUBE_BIN  := .cache/kube
KUBE_CMDS := kube-apiserver kube-scheduler kube-controller-manager kubelet
KUBE_APT  := etcd-server containerd runc containernetworking-plugins
KUBE_LDFLAGS := -s -w -X k8s.io/component-base/version.gitVersion=v1.37.2 \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37
kube: $(addprefix $(KUBE_BIN)/,$(KUBE_CMDS))
	@missing=""; for p in $(KUBE_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
$(KUBE_BIN)/%: tools/kube/go.mod tools/kube/go.sum
	mkdir -p $(KUBE_BIN)
	cd tools/kube && $(GO) build -trimpath -ldflags='$(KUBE_LDFLAGS)' -o $(CURDIR)/$@.tmp k8s.io/kubernetes/cmd/$*
	mv $@.tmp $@

# The pause image the test cluster's pods start in (tools/pause, static).
PAUSE_IMAGE := out/pause-image.tar
$(PAUSE_IMAGE): tools/pause/main.go tools/mkimage/main.go internal/ociimage/write.go
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/pause ./tools/pause
	$(GO) run ./tools/mkimage -o $(PAUSE_IMAGE) -name zflow.local/pause:1 -file /pause=bin/pause -entrypoint /pause

# zflow run --cluster kubernetes against a real Kubernetes on this machine:
# a control plane and 3 kubelets in 3 network namespaces
# (interop/kube/cluster.sh), the images imported into each host's
# containerd. The tests bring the cluster up and take it down (ZK_KEEP=1
# leaves it up; interop/kube/cluster.sh down removes it).
cluster-test: build kube image $(PAUSE_IMAGE)
	ZFLOW_KUBE=1 $(GO) test -count=1 -timeout 20m -v ./interop/kube/

# Fuzz each parser (FUZZTIME=10m for the long run quoted in notes).
FUZZTIME ?= 1m
fuzz: deps
	$(GO) test $(call uring_test_ldflags,./pipelines/) -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) -parallel=1 ./pipelines/
	$(GO) test $(call uring_test_ldflags,./operators/expr/) -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) -parallel=1 ./operators/expr/
	$(GO) test -run='^$$' -fuzz='^FuzzPDU$$' -fuzztime=$(FUZZTIME) -parallel=1 ./nvmeof/pdu/
	$(GO) test -run='^$$' -fuzz='^FuzzConn$$' -fuzztime=$(FUZZTIME) -parallel=1 ./nvmeof/pdu/
	$(GO) test -run='^$$' -fuzz='^FuzzHLLUnmarshal$$' -fuzztime=$(FUZZTIME) -parallel=1 ./operators/stateful/
	$(GO) test -run='^$$' -fuzz='^FuzzTDigestUnmarshal$$' -fuzztime=$(FUZZTIME) -parallel=1 ./operators/stateful/
	$(GO) test -run='^$$' -fuzz='^FuzzControl$$' -fuzztime=$(FUZZTIME) -parallel=1 ./io/rdma/
	$(GO) test -run='^$$' -fuzz='^FuzzWire$$' -fuzztime=$(FUZZTIME) -parallel=1 ./io/rdma/

# Benchmarks are not tests: they print figures (ratios against a baseline
# measured in the same run) and never assert a timing.
bench: deps
	$(GO) test $(call uring_test_ldflags,./bench/) -run='^$$' -bench=. -benchtime=5x -cpu 1,2 ./bench/

# Engine overhead (pipeline ÷ the same compute calls in a plain loop), with a
# PNG chart: bench/results/overhead.{json,png}.
bench-overhead: deps
	$(GO) run ./bench/cmd/overhead

# What OpenTelemetry costs a run (off, sampled out, operator spans, metrics,
# batch spans), as ratios in one run: bench/results/tracing.{json,png}.
bench-tracing: deps
	$(GO) run ./bench/cmd/tracing

# The arena allocator against Go's on the core pipeline (rows/s, minor page
# faults per GB) and per buffer size: bench/results/arena.{json,png}.
# As root it reserves 2 MiB hugepages for the run and restores the pool.
bench-arena: deps
	$(GO) run $(call uring_ldflags,./bench/cmd/arena) ./bench/cmd/arena

# zflow vs DuckDB (through @duckdb/node-api, threads=2) on a 10M-row CSV, as
# whole processes under hyperfine: bench/results/duckdb.{json,md,png}.
# Installs hyperfine, time and the npm packages if missing; ~5 minutes.
bench-duckdb: deps
	bash bench/duckdb.sh
	bash bench/stateful.sh

# zflow's stateful operators (group-by, joins, top-k, sort) against DuckDB and
# Polars on 10M rows of Parquet: bench/results/stateful.{md,json,png}.
bench-stateful: deps
	bash bench/stateful.sh

# zflow's send paths (write, MSG_ZEROCOPY, io_uring SEND_ZC) against iperf3
# (plain and --zerocopy) per message size, on loopback and across a veth
# pair between two network namespaces it creates and removes (as root), and
# the Arrow stream end to end (two bin/zflow runs, tcp_out -> tcp_in) against
# iperf3 in the same run: bench/results/net.{json,md,png}. Installs iperf3
# if missing; ~8 minutes.
bench-net: build
	@command -v iperf3 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3; }
	$(GO) run $(call uring_ldflags,./bench/cmd/net) ./bench/cmd/net

# zflow's file reads against fio on the same files in one run: fio's psync,
# io_uring, libaio (and mmap) engines against zflow's posix, uring (and
# mmap) backends through io/storage, at the same block size and queue
# depth, on tmpfs and on the disk (O_DIRECT both sides; buffered with the
# page cache dropped when root); then the arrow source -> discard as
# zflow run against fio's sequential bandwidth on the same Arrow file:
# bench/results/io.{json,md,png}. Installs fio if missing; ~10 minutes;
# writes a 1 GiB file on /dev/shm and a 3 GiB one under bench/data/io,
# removed at the end.
bench-io: build
	@command -v fio >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio; }
	$(GO) run $(call uring_ldflags,./bench/cmd/io) ./bench/cmd/io

# NVMe/TCP: our initiator against our target (in the benchmark's process)
# over loopback — 4 KiB random reads at QD 1/32/128, 1 MiB sequential reads
# and writes, 1 and 4 I/O queues, RAM and file namespaces — against iperf3
# (one stream) and fio (psync, io_uring) on the namespace's file in the
# same run: bench/results/nvmeof.{json,md,png}. Installs fio and iperf3 if
# missing; ~4 minutes; writes a 256 MiB file under bench/data/nvmeof,
# removed at the end.
# zflow's RDMA stream against its TCP Arrow stream: on the host the
# emulated provider, then in the QEMU guest real verbs on Soft-RoCE against
# perftest's ib_write_bw on the same device (bench/results/rdma_host.*,
# rdma_guest.*).
bench-rdma: deps
	$(GO) run ./bench/cmd/rdma -place host
	INTEROP_BENCH=rdma bash interop/guest/run.sh

# zflow run --cluster kubernetes on the test cluster (3 kubelets in
# network namespaces of this machine) against zflow run on one host, the
# same CSV -> Parquet over 24 files, in turns: bench/results/cluster.*.
bench-cluster: build kube image $(PAUSE_IMAGE)
	$(GO) run ./bench/cmd/cluster

bench-nvmeof:
	@command -v fio >/dev/null 2>&1 && command -v iperf3 >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio iperf3; }
	$(GO) run $(call uring_ldflags,./bench/cmd/nvmeof) ./bench/cmd/nvmeof

# Handing batches to another process through a shared segment (cxl)
# against their bytes over a Unix socket and loopback TCP, with one memcpy
# as the reference: handoff latency (parked/spinning, pinned or not) and
# throughput for 4 KiB to 64 MiB batches, in one run:
# bench/results/shm.{json,md,png}. ~1 minute.
bench-shm: deps
	$(GO) run ./bench/cmd/shm

# A real multi-node NUMA machine (CPU nodes 0 and 1, memory-only node 2 as
# CXL memory appears) with an emulated NVDIMM on node 2 in a QEMU guest under
# TCG: boots a stock Debian kernel with static zflow and interop/numa's,
# interop/dax's and interop/nvme's tests; checks topology, page placement,
# per-node hugepages and pinning, device DAX for real (/dev/dax0.0:
# topology, two zflow processes through it, gc, a killed producer), and our
# NVMe/TCP against the kernel's nvme-tcp host and nvmet-tcp target over the
# guest's loopback (interop/README.md). The last step of `make test`.
# Installs qemu-system-x86, busybox-static, cpio, xz-utils and kmod if
# missing; caches the kernel and its NVDIMM and NVMe modules under
# .cache/interop/. ~65-100 s warm on a loaded 2-vCPU machine (the NVMe
# checks ~30 s of it), plus the kernel download and the first static build.
interop: deps
	GO='$(GO)' bash interop/guest/run.sh

clean:
	rm -rf bin out .cache
