package operators

// The stateful operators (aggregate, join, sort, …) live in their own
// package with the machinery they share; importing it registers them with
// everything else here.
import _ "github.com/zflowdev/zflow/operators/stateful"
