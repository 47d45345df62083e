#!/bin/sh
# /init of the NUMA interop guest; interop/guest/run.sh packs it with busybox,
# zflow and numa.test (static binaries) into the initramfs. It reserves 2 MiB
# hugepages on every node, prints the topology, runs the tests and powers
# off. Every line run.sh looks for starts with "ZG: ". The kernel passes
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

say "BEGIN zflow topology"
zflow topology
say "END zflow topology rc=$?"
say "BEGIN zflow topology --json"
zflow topology --json
say "END zflow topology --json rc=$?"

say "BEGIN numa.test uptime=$(up)s"
ZFLOW_GUEST=numa ZFLOW_BIN=/bin/zflow numa.test -test.v -test.count=1 -test.timeout=${ZG_TEST_TIMEOUT:-180s} ${ZG_TEST_RUN:+-test.run=$ZG_TEST_RUN}
say "END numa.test rc=$? uptime=$(up)s"
say "DONE uptime=$(up)s"
poweroff -f
