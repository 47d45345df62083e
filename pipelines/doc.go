// Package pipelines reads zflow's YAML pipeline files: it parses them with
// positions kept (github.com/goccy/go-yaml), checks them strictly, decodes
// every operator's parameters into the config struct its engine.Spec
// declares, and builds an engine.Graph; Compile turns that into an
// engine.Plan. Every error is reported as file:line:col: message, and all
// the errors of a file come back together, sorted by position.
//
// The package follows the model of Benthos' config linting: the operator's
// Spec (its NewConfig struct and tags, read through engine.Params) is the
// only description of its parameters, so what this package accepts, what
// `zflow operators` prints and what the reference docs say cannot disagree.
//
// # Using it
//
//	p, err := pipelines.Load("vwap.yaml")      // parse, decode, check the graph's shape
//	if err != nil { ... }                       // an ErrorList: file:line:col: message, one per line
//	plan, err := p.Compile()                    // build the operators: schemas, expressions
//
// Parse and Load report syntax, structure, parameter and graph errors
// (unknown types, dangling inputs, cycles, unused outputs, parallelism on a
// stateful operator). Compile reports what needs the input schemas: unknown
// columns, type errors and syntax errors in expressions, placed at the
// character inside the expression. WithRegistry chooses the operator
// registry (default engine.DefaultRegistry), WithEnv the environment.
//
// # The file format
//
//	version: 1                  # required; the only version so far
//	name: vwap                  # required
//	settings:                   # optional
//	  batch_rows: 65536         # target rows per source batch (≥ 1)
//	  edge_capacity: 4          # batches buffered per edge before backpressure (≥ 1)
//	  pin: false                # pin operator threads to the CPUs of the node nearest their data
//	  threads: auto             # most instances parallelism: auto gives an operator: auto (the CPUs this process may use) | 1, 2, ...
//	  memory:
//	    arena: hugepage         # hugepage (→ thp → plain; a fallback is a warning only when arena is written here) | thp | plain | heap | a registered kind
//	    page: 2MiB              # hugepage size: 2MiB | 1GiB
//	    node: auto              # NUMA node to bind to: auto (unbound: first touch) | 0, 1, ...
//	    budget: 0               # hard limit on bytes in use (fails the run naming the operator); 0 = none
//	    soft_budget: 0          # above it allocations wait for frees (backpressure); 0 = none
//	    lock: false             # mlock the arena
//	    prefault: true          # fault pages in when mapped, not on the hot path
//	    path: /dev/dax0.0       # kinds backed by a file (cxl): device-DAX file, or a file on tmpfs/hugetlbfs
//	    size: 1GiB              # kinds backed by a file: the segment's size
//	  spill:                    # where stateful operators (sort) write what does not fit their budget
//	    dir: ""                 # empty: the OS temporary directory; each instance makes zflow-spill-<pid>-<node>-* in it
//	    io: auto                # auto | posix | uring
//	    compression: none       # none | lz4 | zstd
//	  trace:
//	    exporter: none          # none | stdout | otlp
//	    protocol: grpc          # otlp only: grpc | http
//	    endpoint: localhost:4317  # otlp only (OTEL_EXPORTER_OTLP_ENDPOINT overrides)
//	    sampling: 1             # fraction of runs traced, 0..1
//	    batches: 0              # fraction of source batches traced through the graph, 0..1
//	    timeout: 5s             # longest wait for the collector
//	  metrics:
//	    exporter: none          # none | stdout | otlp
//	    protocol: grpc          # otlp only: grpc | http
//	    endpoint: localhost:4317  # otlp only
//	    interval: 10s           # export interval
//	    listen: 127.0.0.1:9464  # serve Prometheus /metrics during the run
//	sources:                    # required: id -> node
//	  trades: {type: parquet, path: testdata/trades.parquet}
//	operators:                  # optional
//	  big:    {type: filter, inputs: [trades], where: "qty > 100"}
//	sinks:                      # required
//	  out:    {type: parquet, inputs: [big], path: out/vwap.parquet}
//
// The top level holds exactly these keys; a key starting with "x-" is
// ignored, as a place for YAML anchors shared by several nodes:
//
//	x-defaults: &csv {type: csv, header: true}
//	sources:
//	  a: {<<: *csv, path: a.csv}
//
// Node ids are the keys of the three sections and are unique across them;
// they use letters, digits, _ and -, and start with a letter or _. Every
// node is a map with these common keys:
//
//	type         the operator type, registered for the section's kind (required)
//	inputs       the ids of the nodes feeding it: a list, or one id as a string
//	             (operators and sinks only)
//	parallelism  instances to run (≥ 1; only for operators that may run as several instances)
//	ordered      with parallelism > 1, a transform emits batches in input order
//	             (default true); false emits them as instances finish. A
//	             parallel source or sink has no order to keep (each instance
//	             reads or writes its own share): ordered: true there is an error
//	memory       where this operator allocates, with the keys of
//	             settings.memory: with an arena, a pool of its own (say
//	             {arena: plain, node: 1}); without one, the run's pool under
//	             its own budget ({budget: 256MiB}); the summary reports each
//	             operator's pool, peak and limit
//
// Every other key is a parameter of the operator, decoded into its config
// struct (the one its Spec's NewConfig returns, so unset parameters keep
// their defaults). Unknown parameters, wrong types, missing required
// parameters and values outside an enum are errors. What a parameter
// accepts depends on its Go type:
//
//	string            any scalar (a number keeps its text: 0x1F stays "0x1F")
//	bool              true or false
//	int, int64...     an integer (0x1F, 0o17, 1_000), or a float without fraction (1e6)
//	uint, uint8...    the same, not negative
//	float64, float32  an integer or a float (.inf, .nan)
//	time.Duration     a Go duration: 500ms, 5s, 1m30s (0 needs no unit)
//	engine.Size       a byte count: 4096, 64KiB, 2GiB, 1.5MB
//	[]T               a list, flow or block; a single scalar counts as a list of one
//	map[string]T      a map
//	struct            a map of the struct's own parameters, checked the same way
//	*T                as T; null leaves it nil
//	any               whatever YAML holds: string, int64, float64, bool, nil, []any, map[string]any
//	TextUnmarshaler   any scalar, given its text
//
// Null (a key with no value, ~, null) is an error for everything but
// pointers and any.
//
// # Environment variables
//
// String values (not keys) may use ${NAME}, which is an error when NAME is
// not set, and ${NAME:-default}, which takes default when NAME is unset or
// empty. $$ is a literal $; any other $ stays as it is. A value that came
// from a variable may fill a number or bool parameter (parallelism:
// ${THREADS:-4}). Substitution happens once; the result is not scanned
// again. WithEnv replaces os.LookupEnv (tests use it).
//
// # Paths
//
// Paths in parameters (path: data/trades.parquet) are passed to operators
// as written: a relative path is relative to the working directory of the
// process, not to the pipeline file, as in most command-line tools. Use
// ${NAME} to make a pipeline independent of where it runs.
//
// The path of a file source (csv, ndjson, parquet, arrow) names one input or
// many, as DuckDB's read_csv and read_parquet take them:
//
//	path: data/trades.csv            # a file
//	path: "data/*.csv"               # a glob: * ? [..] within a name (sorted matches)
//	path: "data/**/*.parquet"        # ** as a whole element: any number of directories
//	path: data/trades                # a directory: its files, recursively, in lexical
//	                                 # order, skipping hidden and _-prefixed names (_SUCCESS)
//	path: [a.csv, "more/*.csv"]      # a list, taken in order
//	path: "-"                        # standard input (csv, ndjson, arrow stream; not parquet)
//
// A glob that matches nothing, or a directory with no file, is an error at
// compile time naming it; * and ** do not match names starting with a dot.
// Every file must have the first one's columns (an error names both files
// and the column). hive_partitioning (auto by default) restores key=value
// directories (Hive-partitioned trees, as DuckDB and Spark write them) as
// columns, and filename: true adds a column naming each row's file.
//
// A file sink's path "-" writes standard output, as the batches arrive. A
// pipeline may have one node reading standard input and one writing
// standard output (the stdout sink counts); a second is an error at both
// nodes. With partition_by, a parquet, csv or ndjson sink's path is a
// directory, written as a whole: rows go to path/key=value/.../part-N.ext.
// zflow validate, plan and run read the start of standard input when a
// source reads "-": it holds the schema.
//
// # YAML
//
// Anchors, aliases and << merge keys work; an alias must follow its anchor.
// Duplicate keys are errors, in every mapping. Tabs may not indent. A file
// holds one YAML document. Standard tags (!!str) are understood, others are
// errors. Positions are 1-based; columns count characters, not bytes. An
// error inside a string (an expression) points at the character: offsets
// are mapped back through quotes, escapes, folded and block scalars and
// ${...} substitution (a character that came from a variable points at its
// ${).
package pipelines
