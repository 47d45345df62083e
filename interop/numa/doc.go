// Package numa holds checks that need a real multi-node NUMA machine, run
// inside a QEMU guest that has one (`make interop`, see interop/README.md).
// The package has no code of its own: its tests drive the real topology and
// buffers packages and verify what they did through the kernel's own
// accounting, never through our reports alone.
//
// The guest (interop/guest/run.sh) is booted with
//
//	node 0: CPUs 0-1, memory      (a socket)
//	node 1: CPUs 2-3, memory      (a second socket)
//	node 2: memory only, no CPUs  (how a CXL Type-3 memory expander appears)
//	distances 0-1 = 20, 0-2 = 30, 1-2 = 30 (the CXL node is the farthest)
//
// and its /init reserves 2 MiB hugepages on every node through
// /sys/devices/system/node/nodeN/hugepages before it runs the test binary
// with ZFLOW_GUEST=numa. The tests check:
//
//  1. the topology: zflow topology --json lists three nodes, node 2 with no
//     CPUs and memory_only true (topology.Read agrees);
//  2. page placement: the pages of arenas bound to node 0, 1 and 2 are on
//     that node, as move_pages(2) (topology.PageNodes) and
//     /proc/self/numa_maps report them;
//  3. hugepages per node: a hugepage arena bound to node N takes its pages
//     from node N's pool (its free_hugepages drops by the pages mapped, the
//     other nodes' do not) and gives them back on Close;
//  4. pinning: PinCurrentThreadToNode(1) leaves the thread on CPUs 2-3
//     (ThreadAffinity, getcpu), first-touch memory then lands on node 1, and
//     pinning to the memory-only node 2 fails with an error that says so.
//
// Everywhere else (go test ./... on a developer machine or in CI) each test
// skips and says why; off Linux the tests are not built at all. The test names and their "--- PASS" lines are what
// the host harness looks for in the serial log; keep them in step with
// interop/guest/run.sh.
package numa
