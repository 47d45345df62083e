package rdma

// Defaults for RecvOptions.
const (
	DefaultWindow = 64 << 20
	DefaultRecvs  = 64
)
