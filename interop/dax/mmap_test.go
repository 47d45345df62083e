//go:build linux

package dax

import (
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapDevice maps length bytes of the device at off, shared, and unmaps them
// at the end of the test.
func mapDevice(t *testing.T, off int64, length int) ([]byte, error) {
	t.Helper()
	f, err := os.OpenFile(devPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the mapping outlives the descriptor
	mem, err := unix.Mmap(int(f.Fd()), off, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err == nil {
		t.Cleanup(func() { unix.Munmap(mem) })
	}
	return mem, err
}

// TestDAXMapping: device DAX maps only whole multiples of its align (what
// cxl relies on when it maps the device), and a shared futex works on its
// memory across two mappings — the rings of cxl sleep on such futexes, and
// a futex that failed at once would turn every wait into a busy spin,
// correct but burning a CPU.
func TestDAXMapping(t *testing.T) {
	d := guestDevice(t)
	// The last align-sized piece of the device: beyond any extent a
	// segment on it uses while this test runs (none: the exchange tests
	// start from a wiped device and end with one).
	off := (d.size/d.align - 1) * d.align
	if _, err := mapDevice(t, off, int(d.align)/2); !errors.Is(err, unix.EINVAL) {
		t.Errorf("mmap of half the align (%d bytes): %v, want EINVAL", d.align/2, err)
	} else {
		t.Logf("mmap of %d bytes, half the align: %v (as device DAX promises)", d.align/2, err)
	}
	a, err := mapDevice(t, off, int(d.align))
	if err != nil {
		t.Fatalf("mmap of %d bytes at %d: %v", d.align, off, err)
	}
	b, err := mapDevice(t, off, int(d.align))
	if err != nil {
		t.Fatalf("second mmap of %d bytes at %d: %v", d.align, off, err)
	}
	if uintptr(unsafe.Pointer(&a[0]))%uintptr(d.align) != 0 {
		t.Errorf("the mapping starts at %p, not on a %d-byte boundary", &a[0], d.align)
	}
	wa := (*atomic.Uint32)(unsafe.Pointer(&a[64]))
	wb := (*atomic.Uint32)(unsafe.Pointer(&b[64]))
	wa.Store(7)
	if v := wb.Load(); v != 7 {
		t.Fatalf("a store through one mapping reads %d through the other", v)
	}
	// The waiter sleeps on the word through mapping a; the waker wakes it
	// through mapping b: the futex key is the device's page, not the
	// address. The waker retries until a waiter was there to be woken,
	// so no sleep decides the outcome.
	done := make(chan unix.Errno, 1)
	go func() {
		ts := unix.NsecToTimespec(int64(30 * time.Second))
		_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(wa)), 0 /* FUTEX_WAIT, shared */, 7, uintptr(unsafe.Pointer(&ts)), 0, 0)
		done <- e
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(wb)), 1 /* FUTEX_WAKE, shared */, 1, 0, 0, 0)
		if e != 0 {
			t.Fatalf("FUTEX_WAKE on the device: %v", e)
		}
		if n == 1 {
			break
		}
		select {
		case e := <-done:
			t.Fatalf("FUTEX_WAIT on the device returned %v (errno %d) before any wake", e, e)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("FUTEX_WAKE through the second mapping found no waiter in 30 s")
		}
		time.Sleep(time.Millisecond)
	}
	if e := <-done; e != 0 {
		t.Errorf("the waiter returned %v (errno %d), want woken (0)", e, e)
	}
	t.Logf("shared futex on %s: a waiter on one mapping was woken through another", devPath)
	wa.Store(0)
}
