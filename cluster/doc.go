// Package cluster plans and finishes a pipeline run spread over several
// processes on several hosts (zflow run --cluster kubernetes), whatever
// places the processes; cluster/kube places them with Kubernetes.
//
// The model is Spark's and Flink's batch model without their scheduler: a
// coordinator starts W workers; every worker runs the whole pipeline as
// shard i of W (engine.Shard), so each shardable source reads its share of
// the input (files, row groups, batches or rows) and a source that cannot
// split is read by worker 0 alone. Each worker writes its part of every
// sink under a staging directory next to the sink's path, named by the
// run and by the worker's attempt; nothing a worker writes is visible
// under a final name.
//
// Output is published in two phases. Phase one is each worker's own: its
// sinks commit (atomically) into the staging directory, and the worker
// reports its summary. Phase two is the coordinator's, once every worker
// index has succeeded: for every sink it moves exactly one attempt's part
// per index into a new directory part-00000…part-(W-1) and renames that
// directory over the sink's path, then removes the staging directories.
// An attempt that failed or was superseded (a restarted pod) is never
// published, so a batch run's output is exactly once; a coordinator that
// dies before phase two leaves nothing published, only staging
// directories (.zflow-stage-<run>), which Discard removes (Stale lists
// those of other runs).
//
// Files are shared through host paths: directories every node and the
// coordinator see at the same path (a shared file system), mounted into
// every worker. A path the pipeline reads or writes outside them is
// refused at planning, as are sinks without a file (standard output, a
// socket) and, with more than one worker, operators that keep state
// across batches (an aggregate, a join, a sort), which would see only
// their worker's share.
package cluster
