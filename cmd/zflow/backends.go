package main

// The zflow binary offers every storage backend: io/posix and io/mmap come
// with the operators, io/uring is linked here (giouring needs the binary
// built with -ldflags=-checklinkname=0; the Makefile's uring_ldflags adds
// it). An embedder that does not link io/uring gets posix where auto would
// have picked uring, and the reason says so.
import _ "github.com/zflowdev/zflow/io/uring"
