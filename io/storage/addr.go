package storage

import "unsafe"

// addr is the address of buf's first byte.
func addr(buf []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(buf))) }
