// Package engine is zflow's core: the operator contract and registry, the
// graph and its compiled plan, the executor that runs a plan, and the copy
// ledger that accounts for every payload byte an operator moves.
//
// # Model
//
// A pipeline is a DAG of nodes. Each node names a registered operator [Spec]
// (a source, a transform or a sink) and a typed config. [Compile] checks the
// graph (unknown types, dangling or cyclic inputs, duplicate ids), computes
// every node's output schema from its inputs' schemas, and returns a [Plan].
// [Plan.Start] runs it: one goroutine per operator instance, connected by
// bounded edges (capacity in batches) so a slow consumer backpressures its
// producers.
//
// Batches are Arrow record batches passed by reference, following arrow-go's
// Retain/Release contract: a batch handed to an operator is borrowed for the
// call; emitting hands one reference to the engine; fan-out retains once per
// extra consumer and never copies.
//
// Standard input and output belong to the run, not to the process: the
// caller passes them (CompileOptions.Stdin, peeked at by Build through
// [Stdin] to read a schema; RunOptions.Stdout) and instances find them in
// their [InstanceContext]. Compile lets one node read standard input and one
// write standard output (a config's path "-", or a [StdioUser]).
//
// The engine knows no YAML, no concrete operator, no backend and no CLI:
// operators register themselves in init (the database/sql driver pattern),
// and package pipelines turns YAML into a [Graph].
package engine
