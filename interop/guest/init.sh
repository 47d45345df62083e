#!/bin/sh
# /init of the interop guest; interop/guest/run.sh packs it with busybox,
# zflow, numa.test, dax.test and nvme.test (static binaries) and the NVDIMM
# and NVMe/TCP modules into the initramfs. It reserves 2 MiB hugepages on
# every node, turns the NVDIMM into /dev/dax0.0, prints the topology, runs
# the NUMA and DAX tests, loads the NVMe/TCP host and target, runs the
# NVMe tests (their kernel host also against our target on the host, over
# QEMU's user-mode network) and powers off. Every line run.sh looks for starts with "ZG: ". The kernel passes
# ZG_* settings from its command line as environment variables.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp && mount -t tmpfs tmpfs /tmp
say() { echo "ZG: $*"; }
up() { cut -d' ' -f1 /proc/uptime; }
echo # the firmware's last line has no newline
say "INIT uptime=$(up)s kernel=$(uname -r) cpus=$(cat /sys/devices/system/cpu/online) nodes=$(cat /sys/devices/system/node/online) has_cpu=$(cat /sys/devices/system/node/has_cpu) has_memory=$(cat /sys/devices/system/node/has_memory)"

# Hugepages per node, as root: each write allocates from that node only.
HUGE=${ZG_HUGEPAGES:-16}
for d in /sys/devices/system/node/node[0-9]*; do
	n=${d##*/node}
	h=$d/hugepages/hugepages-2048kB
	echo "$HUGE" > "$h/nr_hugepages"
	say "HUGEPAGES node$n nr_hugepages=$(cat "$h/nr_hugepages") free_hugepages=$(cat "$h/free_hugepages") (asked $HUGE)"
done

# Device DAX. The NVDIMM is label-less, so the kernel gives its region one
# raw namespace (namespace0.0, nd_namespace_io) bound to nd_pmem as
# /dev/pmem0. ndctl's `create-namespace -f -e namespace0.0 -m devdax`,
# done here through sysfs: unbind the namespace from nd_pmem, give the
# region's dax seed (an nd_dax device) a uuid, an align and the namespace,
# and bind it to dax_pmem, which writes a DAX info block at the start of the
# namespace and makes dax0.0 on the dax bus; device_dax then makes
# /dev/dax0.0. (The info block stays on the device: a namespace that has
# one comes up in devdax mode by itself, and is left as it is.)
dax() {
	for ko in $(cat /lib/modules/order); do
		insmod "/lib/modules/$ko" || { say "DAX insmod $ko failed"; return 1; }
	done
	say "DAX modules loaded: $(cat /lib/modules/order | tr '\n' ' ')"
	nd=/sys/bus/nd/devices
	wait_for() { # wait_for PATH: up to 10 s (the nd bus probes asynchronously)
		i=0
		while [ ! -e "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		[ -e "$1" ] || { say "DAX no $1 after 10 s"; return 1; }
	}
	wait_for $nd/region0/dax_seed || return 1
	# The namespace is bound to nd_pmem, or (an info block from an earlier
	# boot) already held by a DAX device.
	i=0
	while [ ! -e $nd/namespace0.0/driver ] && [ ! -e /sys/bus/dax/devices/dax0.0 ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	say "DAX region0 size=$(cat $nd/region0/size) numa_node=$(cat $nd/region0/numa_node) target_node=$(cat $nd/region0/target_node) namespace0.0 $(cat $nd/namespace0.0/devtype) mode=$(cat $nd/namespace0.0/mode) driver=$(readlink $nd/namespace0.0/driver | sed 's|.*/||')"
	if [ ! -e /sys/bus/dax/devices/dax0.0 ]; then
		seed=$(cat $nd/region0/dax_seed)
		echo namespace0.0 >/sys/bus/nd/drivers/nd_pmem/unbind &&
			cat /proc/sys/kernel/random/uuid >$nd/$seed/uuid &&
			echo 2097152 >$nd/$seed/align &&
			echo pmem >$nd/$seed/mode &&
			echo namespace0.0 >$nd/$seed/namespace &&
			echo "$seed" >/sys/bus/nd/drivers/dax_pmem/bind ||
			{ say "DAX devdax conversion failed; the kernel's last messages:"; dmesg | tail -20; return 1; }
		say "DAX namespace0.0 -> devdax (seed $seed uuid $(cat $nd/$seed/uuid) align $(cat $nd/$seed/align) memmap in $(cat $nd/$seed/mode)) uptime=$(up)s"
	else
		say "DAX namespace0.0 -> devdax already (an info block from an earlier boot)"
	fi
	wait_for /dev/dax0.0 || return 1
	d=/sys/bus/dax/devices/dax0.0
	say "DAX /dev/dax0.0 size=$(cat $d/size) align=$(cat $d/align) target_node=$(cat $d/target_node) dev=$(cat $d/dev) driver=$(readlink $d/driver | sed 's|.*/||')"
}
dax || say "DAX setup failed"

# make bench-rdma: the network, Soft-RoCE and the benchmark, nothing else.
if [ "$ZG_BENCH" = rdma ]; then
	for ko in $(cat /lib/modules/nvme.order); do insmod "/lib/modules/$ko" >/dev/null 2>&1; done
	ip link set lo up
	for ko in $(cat /lib/modules/net.order) $(cat /lib/modules/rdma.order); do
		insmod "/lib/modules/$ko" || say "BENCH insmod $ko failed"
	done
	i=0
	while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0
	# The dynamic programs (rdma, rdma-bench, perf) find their libraries here.
	export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
	rdma link add rxe0 type rxe netdev eth0
	sleep 1
	say "BEGIN rdma-bench uptime=$(up)s"
	perf=
	[ -z "${ZG_PERF:-}" ] || perf="perf record -q -e cpu-clock -a -g -o /perf.data --"
	$perf rdma-bench -place guest -device rxe0 -addr 10.0.2.15 -json - $(echo "${ZG_BENCH_ARGS:-}" | tr '~' ' ')
	say "END rdma-bench rc=$? uptime=$(up)s"
	if [ -n "$perf" ]; then
		perf report -i /perf.data --stdio --no-children --sort sym -g none 2>/dev/null |
			grep -v -e '^#' -e '^$' | head -60 | sed 's/^/ZG: PERF /'
		for sym in $(echo "${ZG_PERF_CALLERS:-}" | tr '~' ' '); do
			perf report -i /perf.data --stdio --no-children -S "$sym" -G 2>/dev/null |
				grep -v -e '^#' -e '^$' | head -80 | sed "s/^/ZG: PERF $sym /"
		done
	fi
	for f in /sys/class/infiniband/rxe0/ports/1/hw_counters/*; do
		[ -e "$f" ] && say "COUNTER $(basename "$f") $(cat "$f")"
	done
	poweroff -f
fi

say "BEGIN zflow topology"
zflow topology
say "END zflow topology rc=$?"
say "BEGIN zflow topology --json"
zflow topology --json
say "END zflow topology --json rc=$?"

say "BEGIN numa.test uptime=$(up)s"
ZFLOW_GUEST=numa ZFLOW_BIN=/bin/zflow numa.test -test.v -test.count=1 -test.timeout=${ZG_TEST_TIMEOUT:-180s} ${ZG_TEST_RUN:+-test.run=$ZG_TEST_RUN}
say "END numa.test rc=$? uptime=$(up)s"

say "BEGIN dax.test uptime=$(up)s"
ZFLOW_GUEST=dax ZFLOW_BIN=/bin/zflow dax.test -test.v -test.count=1 -test.timeout=${ZG_TEST_TIMEOUT:-180s} ${ZG_TEST_RUN:+-test.run=$ZG_TEST_RUN}
say "END dax.test rc=$? uptime=$(up)s"

# NVMe/TCP: the kernel's host (nvme-tcp) and target (nvmet-tcp), configfs
# for nvmet, null_blk with one memory-backed 1 GiB device (/dev/nullb0, a
# namespace for nvmet that keeps its data) and crc32c for the digests. The
# tests run both ends over the guest's own loopback.
nvme() {
	for ko in $(cat /lib/modules/nvme.order); do
		args=
		[ "$ko" = null_blk.ko ] && args="nr_devices=1 gb=1 memory_backed=1"
		insmod "/lib/modules/$ko" $args || { say "NVME insmod $ko failed"; return 1; }
	done
	say "NVME modules loaded: $(cat /lib/modules/nvme.order | tr '\n' ' ')"
	mount -t configfs configfs /sys/kernel/config || return 1
	ip link set lo up || return 1
	# The virtio NIC on QEMU's user-mode network, where our target on the
	# host is 10.0.2.2 (ZG_HOST_NVME); QEMU's DHCP would give 10.0.2.15.
	for ko in $(cat /lib/modules/net.order); do
		insmod "/lib/modules/$ko" || { say "NVME insmod $ko failed"; return 1; }
	done
	i=0
	while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 || { say "NVME eth0 setup failed"; return 1; }
	say "NVME network: eth0 10.0.2.15/24 ($(cat /lib/modules/net.order | tr '\n' ' ')), our target on the host at ${ZG_HOST_NVME:-?}"
}
if nvme; then
	say "BEGIN nvme.test uptime=$(up)s"
	ZFLOW_GUEST=nvme ZFLOW_BIN=/bin/zflow ZFLOW_HOST_NVME=$ZG_HOST_NVME ZFLOW_HOST_NQN=$ZG_HOST_NQN nvme.test -test.v -test.count=1 -test.timeout=${ZG_TEST_TIMEOUT:-180s} ${ZG_TEST_RUN:+-test.run=$ZG_TEST_RUN}
	say "END nvme.test rc=$? uptime=$(up)s"
else
	say "NVME setup failed"
fi
# RDMA: Soft-RoCE over eth0 (brought up above), the verbs user interface,
# and zflow-verbs (zflow built with libibverbs) with rdma-core's libraries.
# The test makes the rxe0 device itself (rdma link add).
rdma() {
	for ko in $(cat /lib/modules/rdma.order); do
		insmod "/lib/modules/$ko" || { say "RDMA insmod $ko failed"; return 1; }
	done
	say "RDMA modules loaded: $(cat /lib/modules/rdma.order | tr '\n' ' ')"
}
if rdma; then
	say "BEGIN rdma.test uptime=$(up)s"
	LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu ZFLOW_GUEST=rdma ZFLOW_BIN=/bin/zflow-verbs rdma.test -test.v -test.count=1 -test.timeout=${ZG_TEST_TIMEOUT:-180s} ${ZG_TEST_RUN:+-test.run=$ZG_TEST_RUN}
	say "END rdma.test rc=$? uptime=$(up)s"
else
	say "RDMA setup failed"
fi
say "DONE uptime=$(up)s"
poweroff -f
