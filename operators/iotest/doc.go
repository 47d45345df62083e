// Package iotest holds the tests of the file sources and sinks on every
// storage backend (io/posix, io/uring, io/mmap), on tmpfs and on the disk.
// It is a package of its own so that only its test binary links io/uring,
// which needs -ldflags=-checklinkname=0 (the Makefile finds it and adds
// the flag); the operators package's own tests link posix and mmap only.
package iotest
