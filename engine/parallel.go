package engine

import (
	"fmt"

	"github.com/zflowdev/zflow/topology"
)

// readCPUBudget is topology.ReadCPUBudget; tests replace it to compile as on
// a machine of another size.
var readCPUBudget = topology.ReadCPUBudget

// resolveThreads sets s.Threads to the number of instances `parallelism:
// auto` may use — the CPUs this process may keep busy, capped by what the
// settings asked — and returns why, for the plan.
func resolveThreads(s *Settings) string {
	b := readCPUBudget()
	if s.Threads > 0 && s.Threads < b.N {
		why := fmt.Sprintf("settings.threads %d (of %s)", s.Threads, b)
		return why
	}
	asked := s.Threads
	s.Threads = b.N
	if asked > 0 {
		return fmt.Sprintf("%s; settings.threads %d is more", b, asked)
	}
	return b.String()
}

// minSplitRows is the smallest settings.batch_rows at which auto splits a
// transform over several instances: below it the ordered hand-off of each
// batch costs more than a second core gives (bench-overhead, GOMAXPROCS=2,
// filter + project ×2 against one instance each: 1.19× the loop's time at
// 1Ki rows, 0.87× at 8Ki, 0.57× at 64Ki).
const minSplitRows = 4096

// autoParallelism returns the number of instances of node n and how it was
// chosen (empty when there was nothing to choose). s holds the resolved
// Threads; threadsWhy says what set it.
func autoParallelism(n *Node, spec *Spec, s Settings, threadsWhy string) (int, string) {
	threads := s.Threads
	switch {
	case n.Parallelism > 0:
		if spec.Parallel && n.Parallelism > 1 {
			return n.Parallelism, "set in the pipeline"
		}
		return n.Parallelism, ""
	case n.Parallelism < 0:
		return 1, "" // refused by Compile
	case !spec.Parallel:
		return 1, ""
	case threads <= 1:
		return 1, "auto: " + threadsWhy
	case spec.Kind == KindTransform && s.BatchRows < minSplitRows:
		return 1, fmt.Sprintf("auto: one instance, as batches of %d rows are too small to split (%d or more are)", s.BatchRows, minSplitRows)
	case spec.Kind == KindTransform:
		return threads, "auto: " + threadsWhy
	case n.Unordered:
		return threads, fmt.Sprintf("auto with ordered: false: %s", threadsWhy)
	default:
		return 1, fmt.Sprintf("auto: one instance keeps the %s's order (ordered: false would split its work over %d)", spec.Kind, threads)
	}
}
