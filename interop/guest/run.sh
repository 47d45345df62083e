#!/usr/bin/env bash
# make interop: boot a QEMU guest with a real multi-node NUMA machine and an
# emulated NVDIMM, and run interop/numa's and interop/dax's tests inside it
# (see interop/README.md).
#
#   node 0: CPUs 0-1 + memory, node 1: CPUs 2-3 + memory,
#   node 2: memory only (how CXL Type-3 memory appears), the farthest node,
#           and an NVDIMM (label-less, backed by a file under .cache/interop)
#           that /init turns into the device-DAX device /dev/dax0.0.
#
# Steps, each timed: Debian packages and the kernel (apt-get, cached under
# .cache/interop/) with the NVDIMM modules and their insmod order (depmod on
# the host), static zflow, numa.test and dax.test, the initramfs (busybox +
# those binaries + the modules + init.sh), one boot under TCG with a hard
# timeout, then the serial log is checked for every expected PASS line and
# no FAIL.
#
# Settings (environment): GO (go), INTEROP_KERNEL (linux-image-6.1.0-56-amd64),
# INTEROP_NODE_MEM (512M per node), INTEROP_HUGEPAGES (16 per node),
# INTEROP_DAX_SIZE (256M, the NVDIMM; a multiple of 2M),
# INTEROP_TIMEOUT (300 s for the boot), INTEROP_RUN (a -test.run filter; the
# PASS check then only looks for what it selects), INTEROP_ACCEL (tcg; kvm
# hangs a stock kernel on our VMs, see docs/guest.md), INTEROP_BENCH (rdma:
# run bench/cmd/rdma on Soft-RoCE in the guest instead of the tests, and
# write its report to bench/results/rdma_guest.*; make bench-rdma),
# INTEROP_BENCH_ARGS (more flags for that benchmark, e.g. "-sizes 64KiB
# -reps 1"; its report then goes to .cache/interop/bench/, and with
# -cpuprofile the guest's CPU profile to .cache/interop/rdma_guest.pprof),
# INTEROP_PERF (1: the benchmark runs under the host's perf, whole-system
# cpu-clock samples, and the report's hottest symbols go to the log;
# INTEROP_PERF_CALLERS="sym …" adds the call graphs into those symbols),
# INTEROP_GUEST_ENV ("NAME=VALUE …" on the kernel's command line: the
# environment of /init and what it runs, e.g. GOMAXPROCS=1).
set -euo pipefail

cd "$(dirname "$0")/../.."
PATH=$PATH:/usr/sbin:/sbin # depmod, for a user whose PATH lacks them
GO=${GO:-go}
C=.cache/interop
KPKG=${INTEROP_KERNEL:-linux-image-6.1.0-56-amd64}
NODE_MEM=${INTEROP_NODE_MEM:-512M}
HUGE=${INTEROP_HUGEPAGES:-16}
DAX_SIZE=${INTEROP_DAX_SIZE:-256M}
# What /dev/dax0.0 needs: the ACPI NFIT driver, the NVDIMM core and pmem
# namespace driver, device DAX over pmem, and the /dev/daxX.Y driver.
DAX_MODS=(nfit nd_pmem dax_pmem device_dax)
# What the NVMe/TCP checks need: configfs (nvmet's configuration), null_blk
# (a memory-backed namespace for nvmet), crc32c (the digests; the kernel
# would ask modprobe for it, which the guest lacks), the host and the
# target.
NVME_MODS=(configfs null_blk crc32c_generic nvme-tcp nvmet-tcp)
# What the guest's network needs to reach our target on the host: a
# virtio NIC on QEMU's user-mode network, where the host's 127.0.0.1 is
# 10.0.2.2.
NET_MODS=(virtio_pci virtio_net)
# What the RDMA checks need: crc32 (rxe checksums its packets with the
# crypto API's crc32 and cannot ask modprobe for it), Soft-RoCE (rdma_rxe,
# over eth0) and the verbs
# user interface (/dev/infiniband/uverbs*), with ib_core and the UDP
# tunnel helpers they pull in.
RDMA_MODS=(crc32_generic rdma_rxe ib_uverbs)
# Host packages for the RDMA checks: libibverbs to build zflow's verbs
# provider (cgo), and what the guest runs beside it: the rxe provider,
# ibv_devices, perftest's ib_write_bw and iproute2's rdma tool.
RDMA_PKGS=(libibverbs-dev ibverbs-providers ibverbs-utils perftest iproute2)
TIMEOUT=${INTEROP_TIMEOUT:-300}
RUN=${INTEROP_RUN:-}
BENCH=${INTEROP_BENCH:-}
PERF=${INTEROP_PERF:-}
PERF_CALLERS=$(printf %s "${INTEROP_PERF_CALLERS:-}" | tr ' ' '~')
# Extra flags for the guest's benchmark (INTEROP_BENCH_ARGS="-sizes 64KiB -reps 1"):
# spaces travel as ~ on the kernel's command line.
BENCH_ARGS=$(printf %s "${INTEROP_BENCH_ARGS:-}" | tr ' ' '~')
case "$BENCH" in
"") ;;
rdma) TIMEOUT=${INTEROP_TIMEOUT:-900} ;;
*) echo "interop: INTEROP_BENCH=$BENCH: want rdma" >&2; exit 1 ;;
esac
ACCEL=${INTEROP_ACCEL:-tcg}
LOG=$C/serial.log

say() { echo "interop: $*"; }
die() { echo "interop: FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

mkdir -p "$C/debs"
exec 9>"$C/.lock"
flock -n 9 || die "another make interop holds $C/.lock"
T0=$(now)

# ---- 1. packages and kernel (cached) ----
need=()
for p in qemu-system-x86 busybox-static cpio xz-utils kmod "${RDMA_PKGS[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
	[ "$(id -u)" = 0 ] || die "missing Debian packages ${need[*]} and not root to install them"
	say "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
deb=$(ls "$C"/debs/"$KPKG"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
	say "downloading $KPKG"
	fetch() { (cd "$C/debs" && apt-get download -o APT::Sandbox::User=root "$1" >/dev/null 2>&1); }
	# A fresh machine may have empty package lists: update once, then retry.
	if ! fetch "$KPKG" && { [ "$(id -u)" != 0 ] || ! apt-get update -qq || ! fetch "$KPKG"; }; then
		# A security update renames the package (a new ABI number) and the
		# old one may leave the mirror: take what linux-image-amd64 wants now.
		cur=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
		[ -n "$cur" ] || die "cannot download $KPKG, and apt-cache names no current linux-image-amd64 kernel"
		say "$KPKG is not downloadable; using $cur (set INTEROP_KERNEL=$cur to pin it)"
		KPKG=$cur
		(cd "$C/debs" && apt-get download -o APT::Sandbox::User=root "$KPKG" >/dev/null)
	fi
	deb=$(ls "$C"/debs/"$KPKG"_*.deb | head -1)
fi
kdir=$C/kernel/$(basename "$deb" .deb)
if [ ! -e "$kdir/vmlinux" ] && [ ! -e "$kdir/bzImage" ]; then
	rm -rf "$kdir" && mkdir -p "$kdir"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir" --wildcards './boot/vmlinuz-*'
	vmlinuz=$(ls "$kdir"/boot/vmlinuz-*)
	# The uncompressed ELF boots through PVH straight into the kernel: under
	# TCG that skips ~3 s of xz decompression. bzImage is the fallback.
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1 || true)
	# (tail dies of SIGPIPE when xz stops at the end of the stream: judge
	# the result by its ELF magic, not the pipeline's status.)
	[ -z "$off" ] || tail -c +$((off + 1)) "$vmlinuz" | xz -dc --single-stream >"$kdir/vmlinux.tmp" 2>/dev/null || true
	if [ "$(head -c 4 "$kdir/vmlinux.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
		mv "$kdir/vmlinux.tmp" "$kdir/vmlinux"
	else
		rm -f "$kdir/vmlinux.tmp"
		mv "$vmlinuz" "$kdir/bzImage"
	fi
	rm -rf "$kdir/boot"
fi
KERNEL=$kdir/vmlinux
[ -e "$KERNEL" ] || KERNEL=$kdir/bzImage
# The NVDIMM modules, the NVMe/TCP modules and what they depend on, in
# insmod order: the .deb ships no modules.dep, so depmod runs on the
# unpacked tree once and modprobe --show-depends gives the order (kept in
# modules/order, modules/nvme.order and modules/net.order).
mdir=$kdir/modules
if [ ! -s "$mdir/order" ] || [ ! -s "$mdir/nvme.order" ] || [ ! -s "$mdir/net.order" ] || [ ! -s "$mdir/rdma.order" ]; then
	mtmp=$C/modules.tmp
	rm -rf "$mtmp" "$mdir" && mkdir -p "$mtmp" "$mdir"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$mtmp" --wildcards './lib/modules/*'
	kver=$(ls "$mtmp/lib/modules")
	depmod -b "$mtmp" "$kver" || die "depmod of $kver failed"
	deps() { # deps MODULE...: their .ko files and what they need, in insmod order
		for m in "$@"; do
			modprobe -d "$mtmp" -S "$kver" --show-depends "$m" || die "modprobe --show-depends $m failed: $m is not a module of $kver"
		done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
	}
	for set in order:DAX_MODS nvme.order:NVME_MODS net.order:NET_MODS rdma.order:RDMA_MODS; do
		list=${set%%:*}
		declare -n mods=${set#*:}
		deps "${mods[@]}" >"$mtmp/list"
		while read -r ko; do
			cp "$ko" "$mdir/" && basename "$ko" >>"$mdir/$list.tmp"
		done <"$mtmp/list"
		mv "$mdir/$list.tmp" "$mdir/$list"
		unset -n mods
	done
	rm -rf "$mtmp"
fi
T1=$(now)
say "kernel: $(basename "$deb") -> $KERNEL, modules $(tr '\n' ' ' <"$mdir/order")+ $(tr '\n' ' ' <"$mdir/nvme.order")($(secs "$T0" "$T1") s)"

# ---- 2. static binaries ----
# -checklinkname=0 only for a binary that links io/uring (see the Makefile).
ldf() {
	# grep reads all of go list's output (no -q): an early exit would be
	# SIGPIPE for go list, a failed pipeline under pipefail.
	if "$GO" list -deps "$@" | grep -E '^github.com/zflowdev/zflow/io/uring( \[|$)' >/dev/null; then
		echo '-checklinkname=0 -s -w'
	else
		echo '-s -w'
	fi
}
CGO_ENABLED=0 "$GO" build -ldflags="$(ldf ./cmd/zflow)" -o "$C/zflow" ./cmd/zflow ||
	die "CGO_ENABLED=0 go build ./cmd/zflow failed"
for p in numa dax nvme rdma; do
	CGO_ENABLED=0 "$GO" test -c -ldflags="$(ldf -test ./interop/$p)" -o "$C/$p.test" ./interop/$p ||
		die "CGO_ENABLED=0 go test -c ./interop/$p failed"
done
# zflow with the real verbs provider: cgo, linked against libibverbs
# (dynamic; the initramfs gets its libraries).
CGO_ENABLED=1 "$GO" build -tags rdma_verbs -ldflags="$(ldf ./cmd/zflow)" -o "$C/zflow-verbs" ./cmd/zflow ||
	die "CGO_ENABLED=1 go build -tags rdma_verbs ./cmd/zflow failed (libibverbs-dev installed?)"
rm -f "$C/rdma-bench"
if [ "$BENCH" = rdma ]; then
	strip=-ldflags=-s\ -w
	[ -z "$PERF" ] || strip= # perf names Go functions from the symbol table
	CGO_ENABLED=1 "$GO" build -tags rdma_verbs ${strip:+"$strip"} -o "$C/rdma-bench" ./bench/cmd/rdma ||
		die "CGO_ENABLED=1 go build -tags rdma_verbs ./bench/cmd/rdma failed"
fi
T2=$(now)
say "build: zflow $(($(stat -c %s "$C/zflow") >> 20)) MiB, numa.test $(($(stat -c %s "$C/numa.test") >> 20)) MiB, dax.test $(($(stat -c %s "$C/dax.test") >> 20)) MiB, nvme.test $(($(stat -c %s "$C/nvme.test") >> 20)) MiB ($(secs "$T1" "$T2") s)"

# ---- 3. initramfs ----
R=$C/root
rm -rf "$R" && mkdir -p "$R"/{bin,proc,sys,dev,tmp,lib/modules}
cp /bin/busybox "$R/bin/busybox"
for a in sh mount mkdir cat cut uname poweroff ls grep sed dmesg insmod sleep readlink tr ip dd cmp sha256sum head basename; do # what init.sh uses, and a little more
	ln -s busybox "$R/bin/$a"
done
cp "$C/zflow" "$C/numa.test" "$C/dax.test" "$C/nvme.test" "$C/rdma.test" "$C/zflow-verbs" "$R/bin/"
cp "$mdir"/* "$R/lib/modules/"
# The dynamic programs of the RDMA checks, the shared libraries they and
# the rxe provider load (at the paths ldd gives), and libibverbs' provider
# list.
rxe_provider=$(ls /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav*.so | head -1)
[ -n "$rxe_provider" ] || die "no rxe provider in /usr/lib/x86_64-linux-gnu/libibverbs (ibverbs-providers installed?)"
rdma_progs=("$C/zflow-verbs" "$(command -v rdma)" "$(command -v ibv_devices)" "$(command -v ib_write_bw)")
[ ! -e "$C/rdma-bench" ] || { cp "$C/rdma-bench" "$R/bin/"; rdma_progs+=("$C/rdma-bench"); }
if [ -n "$PERF" ]; then
	command -v perf >/dev/null || die "INTEROP_PERF: no perf here (apt-get install linux-perf)"
	rdma_progs+=("$(command -v perf)")
fi
for b in "${rdma_progs[@]:1}"; do cp "$b" "$R/bin/"; done
for lib in $(ldd "${rdma_progs[@]}" "$rxe_provider" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }' | sort -u); do
	mkdir -p "$R$(dirname "$lib")" && cp -L "$lib" "$R$lib"
done
mkdir -p "$R$(dirname "$rxe_provider")" "$R/etc/libibverbs.d"
cp "$rxe_provider" "$R$rxe_provider"
cp /etc/libibverbs.d/rxe.driver "$R/etc/libibverbs.d/"
install -m 755 interop/guest/init.sh "$R/init"
# Not compressed: the kernel would gunzip it under TCG, slower than loading
# the bytes.
(cd "$R" && find . | cpio -o -H newc --quiet) >"$C/initrd.cpio"
rm -rf "$R"
T3=$(now)
say "initramfs: $(($(stat -c %s "$C/initrd.cpio") >> 20)) MiB ($(secs "$T2" "$T3") s)"

# ---- 4. boot ----
case "$ACCEL" in
tcg) accel=(-accel tcg -cpu max) ;;
kvm) accel=(-enable-kvm -cpu host) ;;
*) die "INTEROP_ACCEL=$ACCEL: want tcg or kvm" ;;
esac
# Our target on the host, for the guest's kernel to reach over QEMU's
# user-mode network (10.0.2.2 is the host's 127.0.0.1): the same zflow
# binary, a file namespace under .cache/interop made anew for every boot.
# What the guest writes through it is checked in the file after the boot.
HOST_NQN=nqn.2024-01.dev.zflow:guest-to-host
himg=$C/nvme-host.img
hlog=$C/nvme-host.log
rm -f "$himg"
"$C/zflow" nvmeof serve --listen 127.0.0.1:0 --nqn "$HOST_NQN" --namespace "file:$himg,size=64M" 2>"$hlog" &
hpid=$!
trap 'kill "$hpid" 2>/dev/null || true' EXIT
hport=
for _ in $(seq 100); do
	hport=$(sed -n 's/^nvmeof: listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$hlog")
	[ -n "$hport" ] && break
	kill -0 "$hpid" 2>/dev/null || die "our target on the host did not start: $(cat "$hlog")"
	sleep 0.1
done
[ -n "$hport" ] || die "our target on the host printed no port in 10 s: $(cat "$hlog")"
say "our target on the host: 127.0.0.1:$hport, $HOST_NQN, namespace $himg"
# The NVDIMM's memory is a file, made anew (sparse) for every boot so that
# each run starts from a label-less, never-written device; share=on so the
# guest's stores reach it. Hotpluggable memory (slots, maxmem) is what
# QEMU puts an NVDIMM in.
nvimg=$C/nvdimm0.img
rm -f "$nvimg" && truncate -s "$DAX_SIZE" "$nvimg"
ram=$(numfmt --from=iec "$NODE_MEM" | awk '{ print $1 * 3 / 1048576 }')
nv=$(numfmt --from=iec "$DAX_SIZE" | awk '{ print $1 / 1048576 }')
qemu=(qemu-system-x86_64 "${accel[@]}" -nodefaults -display none -serial stdio -no-reboot
	-machine pc,nvdimm=on
	-smp 4,sockets=2,cores=2,threads=1 -m "${ram}M,slots=1,maxmem=$((ram + nv))M"
	-object "memory-backend-ram,id=m0,size=$NODE_MEM"
	-object "memory-backend-ram,id=m1,size=$NODE_MEM"
	-object "memory-backend-ram,id=m2,size=$NODE_MEM"
	-numa node,nodeid=0,cpus=0-1,memdev=m0
	-numa node,nodeid=1,cpus=2-3,memdev=m1
	-numa node,nodeid=2,memdev=m2
	-numa dist,src=0,dst=1,val=20
	-numa dist,src=0,dst=2,val=30
	-numa dist,src=1,dst=2,val=30
	-object "memory-backend-file,id=nv0mem,share=on,mem-path=$nvimg,size=$DAX_SIZE,align=2M"
	-device nvdimm,id=nv0,memdev=nv0mem,node=2
	-netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile=
	-kernel "$KERNEL" -initrd "$C/initrd.cpio"
	-append "console=ttyS0 quiet panic=-1 numa_balancing=disable ZG_HUGEPAGES=$HUGE ZG_HOST_NVME=10.0.2.2:$hport ZG_HOST_NQN=$HOST_NQN${RUN:+ ZG_TEST_RUN=$RUN}${BENCH:+ ZG_BENCH=$BENCH}${BENCH_ARGS:+ ZG_BENCH_ARGS=$BENCH_ARGS}${PERF:+ ZG_PERF=1}${PERF_CALLERS:+ ZG_PERF_CALLERS=$PERF_CALLERS}${INTEROP_GUEST_ENV:+ $INTEROP_GUEST_ENV}")
say "boot: ${qemu[*]}"
timeout -k 5 "$TIMEOUT" "${qemu[@]}" </dev/null >"$LOG" 2>&1 &
qpid=$!
T5=
while kill -0 "$qpid" 2>/dev/null; do
	if [ -z "$T5" ] && grep -qa 'ZG: INIT' "$LOG"; then T5=$(now); fi
	sleep 0.1
done
qrc=0
wait "$qpid" || qrc=$?
T6=$(now)
[ -n "$T5" ] || T5=$T6
# The serial log has CRLF line ends and the firmware's screen escapes;
# guest.log is the guest's own output without them, and is what is checked.
GLOG=$C/guest.log
sed -n '/ZG: INIT/,$p' "$LOG" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' >"$GLOG"
if [ -s "$GLOG" ]; then
	cat "$GLOG"
else
	echo "interop: the guest never reached /init; the serial log ends with:"
	tail -n 40 "$LOG"
fi
[ ! -s "$GLOG" ] ||
	say "boot to /init: $(secs "$T3" "$T5") s (guest uptime $(sed -n 's/^ZG: INIT uptime=\([0-9.]*\)s.*/\1/p' "$GLOG") s); /init to power-off: $(secs "$T5" "$T6") s"

# ---- 5. verdict ----
case $qrc in
0) ;;
124 | 137) die "the guest did not power off within ${TIMEOUT} s (serial log: $LOG)" ;;
*) die "qemu exited with status $qrc (serial log: $LOG)" ;;
esac
if [ "$BENCH" = rdma ]; then
	kill -TERM "$hpid" 2>/dev/null || true
	wait "$hpid" || true
	trap - EXIT
	json=$(sed -n '/^ZG: BENCH-JSON-BEGIN$/,/^ZG: BENCH-JSON-END$/p' "$GLOG" | sed '1d;$d')
	[ -n "$json" ] || die "the guest's benchmark printed no report (serial log: $LOG)"
	# A run with INTEROP_BENCH_ARGS measures part of the table: its report
	# goes under the cache, not over the committed one.
	res=bench/results
	[ -z "$BENCH_ARGS" ] || { res=$C/bench && mkdir -p "$res"; }
	echo "$json" >"$res/rdma_guest.json"
	prof=$(sed -n '/^ZG: PROF-BEGIN$/,/^ZG: PROF-END$/p' "$GLOG" | sed '1d;$d')
	if [ -n "$prof" ]; then
		echo "$prof" | base64 -d >"$C/rdma_guest.pprof" || die "the guest's CPU profile in the serial log does not decode"
		say "bench: the guest's CPU profile is $C/rdma_guest.pprof"
	fi
	"$GO" run ./bench/cmd/rdma -render "$res/rdma_guest.json" -out "$res" ||
		die "rendering $res/rdma_guest.json failed"
	say "bench: $res/rdma_guest.json, .md, .png (total $(secs "$T0" "$(now)") s)"
	exit 0
fi
want=(
	'^ZG: INIT '
	'^ZG: END zflow topology rc=0$'
	'^ZG: END zflow topology --json rc=0$'
	'^PASS$'
	'^ZG: END numa.test rc=0 '
	'^ZG: DAX modules loaded'
	'^ZG: DAX namespace0.0 -> devdax '
	'^ZG: DAX /dev/dax0.0 size=[0-9]+ align=2097152 target_node=2 '
	'^ZG: END dax.test rc=0 '
	'^ZG: NVME modules loaded'
	'^ZG: END nvme.test rc=0 '
	'^ZG: RDMA modules loaded'
	'^ZG: END rdma.test rc=0 '
	'^ZG: DONE '
)
for n in 0 1 2; do want+=("^ZG: HUGEPAGES node$n nr_hugepages=$HUGE "); done
tests=('TestTopologyJSON' 'TestNodes'
	'TestArenaPages' 'TestArenaPages/node=0' 'TestArenaPages/node=1' 'TestArenaPages/node=2'
	'TestHugepagePools' 'TestHugepagePools/node=1' 'TestHugepagePools/node=2'
	'TestPinning' 'TestHugepageShortNodePool' 'TestPipelineOnNode' 'TestPipelineOnNode/node=1' 'TestPipelineOnNode/node=2'
	'TestDAXTopology' 'TestDAXSizeTooLarge' 'TestDAXExchange' 'TestDAXExchange/round=1' 'TestDAXExchange/round=2'
	'TestDAXProducerKilled' 'TestDAXMapping'
	'TestKernelHostOurTarget' 'TestKernelHostOurTarget/digests=off' 'TestKernelHostOurTarget/digests=on'
	'TestOurHostKernelTarget' 'TestOurHostKernelTarget/digests=off' 'TestOurHostKernelTarget/digests=on'
	'TestPipelineThroughKernelTarget' 'TestKernelHostTargetOnHost'
	'TestSoftRoCEDevice' 'TestIBWriteBW' 'TestTwoProcessesVerbs')
for t in "${tests[@]}"; do
	if [ -z "$RUN" ] || [[ ${t%%/*} =~ $RUN ]]; then want+=("^ *--- PASS: $t "); fi
done
if [ -z "$RUN" ] || [[ TestIBWriteBW =~ $RUN ]]; then
	want+=('^ZG: RDMA ib_write_bw bytes=65536 ')
fi
if [ -z "$RUN" ] || [[ TestTwoProcessesVerbs =~ $RUN ]]; then
	want+=('^ZG: RDMA zflow verbs rows=100000 bytes=[0-9]+ copied_in=0 copied_out=0$')
fi
if [ -z "$RUN" ] || [[ TestKernelHostTargetOnHost =~ $RUN ]]; then
	want+=('^ZG: HOSTNVME wrote offset=[0-9]+ bytes=[0-9]+ sha256=[0-9a-f]{64}$')
fi
# Our target on the host stops on SIGTERM with every connection closed, and
# its namespace file holds what the guest's kernel wrote through it.
kill -TERM "$hpid" 2>/dev/null || true
hrc=0
wait "$hpid" || hrc=$?
trap - EXIT
host_bad=
if [ "$hrc" != 0 ] || ! grep -q '^nvmeof: stopped; every connection closed' "$hlog"; then
	host_bad="our target on the host exited with status $hrc: $(tail -n 5 "$hlog")"
fi
hw=$(grep -aE '^ZG: HOSTNVME wrote ' "$GLOG" | tail -1 || true)
if [ -n "$hw" ]; then
	read -r hoff hlen hsum < <(echo "$hw" | sed -E 's/.*offset=([0-9]+) bytes=([0-9]+) sha256=([0-9a-f]+).*/\1 \2 \3/')
	fsum=$(dd if="$himg" bs=1M skip="$hoff" count="$hlen" iflag=skip_bytes,count_bytes status=none | sha256sum | cut -d' ' -f1)
	if [ "$fsum" = "$hsum" ]; then
		say "our target on the host: its namespace file holds the $hlen bytes the guest wrote at $hoff (sha256 $hsum)"
	else
		host_bad="$host_bad${host_bad:+; }the namespace file's $hlen bytes at $hoff have sha256 $fsum, the guest wrote $hsum"
	fi
fi
missing=()
for w in "${want[@]}"; do
	grep -qaE "$w" "$GLOG" || missing+=("$w")
done
bad=$(grep -naE -- '--- (FAIL|SKIP)|^FAIL|^panic:|Kernel panic|Call Trace' "$LOG" || true)
[ -z "$host_bad" ] || bad="$bad${bad:+$'\n'}$host_bad"
T7=$(now)
say "times: kernel+packages $(secs "$T0" "$T1") s, build $(secs "$T1" "$T2") s, initramfs $(secs "$T2" "$T3") s, boot $(secs "$T3" "$T5") s, tests $(secs "$T5" "$T6") s, total $(secs "$T0" "$T7") s"
if ((${#missing[@]})) || [ -n "$bad" ]; then
	for w in "${missing[@]}"; do echo "interop: missing: $w" >&2; done
	[ -z "$bad" ] || echo "interop: found:"$'\n'"$bad" >&2
	die "guest checks did not all pass (serial log: $LOG)"
fi
say "PASS: ${#want[@]} expected lines present, no FAIL (serial log: $LOG)"
