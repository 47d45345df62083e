package target_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zflowdev/zflow/nvmeof/initiator"
	"github.com/zflowdev/zflow/nvmeof/nvme"
	"github.com/zflowdev/zflow/nvmeof/target"
)

// Our initiator against our target over loopback TCP: 1, 4 and 16 I/O
// queues, queue depth up to 128, digests off and on. Writers on every
// queue write random sizes at random block offsets — small ones in the
// capsule, large ones through R2T and several H2CData PDUs (MAXH2CDATA is
// 8 KiB) — all at once; then every extent is read back concurrently
// (C2HData in 16 KiB pieces) and compared.
func TestLoopbackQueues(t *testing.T) {
	cases := []struct{ queues, depth int }{{1, 1}, {1, 32}, {4, 128}, {16, 16}}
	for _, c := range cases {
		for _, dig := range []bool{false, true} {
			t.Run(fmt.Sprintf("queues=%d/depth=%d/digests=%v", c.queues, c.depth, dig), func(t *testing.T) {
				const size = 32 << 20
				addr, _ := serve(t, size, target.Config{MaxH2CData: 8192, C2HChunk: 16 << 10, MaxIOQueues: 16})
				ctrl := connect(t, addr, initiator.Config{IOQueues: c.queues, QueueDepth: c.depth, HeaderDigest: dig, DataDigest: dig})
				if ctrl.IOQueues() != c.queues {
					t.Fatalf("%d I/O queues connected, want %d", ctrl.IOQueues(), c.queues)
				}
				nss, err := ctrl.Namespaces()
				if err != nil || len(nss) != 1 {
					t.Fatalf("namespaces %v, %v", nss, err)
				}
				ns := nss[0]
				// Extents: disjoint, random sizes of 1 to 64 blocks.
				type extent struct {
					slba uint64
					data []byte
				}
				rng := rand.New(rand.NewPCG(uint64(c.queues), uint64(c.depth)))
				var exts []extent
				for slba := uint64(0); len(exts) < 48*c.queues && slba < ns.Blocks-64; {
					n := 1 + rng.IntN(64)
					data := make([]byte, n<<ns.BlockShift)
					for i := range data {
						data[i] = byte(rng.Uint32())
					}
					exts = append(exts, extent{slba, data})
					slba += uint64(n + rng.IntN(8))
				}
				rng.Shuffle(len(exts), func(i, j int) { exts[i], exts[j] = exts[j], exts[i] })
				run := func(op func(q int, e extent) error) {
					var wg sync.WaitGroup
					errs := make(chan error, len(exts))
					per := c.depth
					for w := range c.queues * per {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for i := w; i < len(exts); i += c.queues * per {
								if err := op(w%c.queues, exts[i]); err != nil {
									errs <- err
									return
								}
							}
						}()
					}
					wg.Wait()
					close(errs)
					for err := range errs {
						t.Fatal(err)
					}
				}
				run(func(q int, e extent) error { return ctrl.Write(q, ns, e.slba, e.data) })
				for q := range c.queues {
					if err := ctrl.Flush(q, ns); err != nil {
						t.Fatal(err)
					}
				}
				run(func(q int, e extent) error {
					got := make([]byte, len(e.data))
					if err := ctrl.Read((q+1)%c.queues, ns, e.slba, got); err != nil {
						return err
					}
					if !bytes.Equal(got, e.data) {
						return fmt.Errorf("extent at block %d (%d bytes) reads back different", e.slba, len(e.data))
					}
					return nil
				})
				if err := ctrl.Close(); err != nil {
					t.Fatalf("disconnect: %v", err)
				}
			})
		}
	}
}

// Checklist 31: a read past NSZE is LBA out of range, an unknown NSID
// invalid namespace, an unknown opcode invalid opcode — through our
// initiator, as *nvme.StatusError.
func TestChecklist31CommandErrors(t *testing.T) {
	addr, _ := serve(t, 1<<20, target.Config{})
	ctrl := connect(t, addr, initiator.Config{})
	ns, err := ctrl.Namespace(1)
	if err != nil {
		t.Fatal(err)
	}
	if ns.Blocks != 256 || ns.BlockShift != 12 {
		t.Fatalf("namespace %+v, want 256 blocks of 4 KiB", ns)
	}
	buf := make([]byte, 8192)
	cases := []struct {
		name string
		err  error
		want nvme.Status
	}{
		{"read past NSZE", ctrl.Read(0, ns, 255, buf), nvme.StatusLBAOutOfRange},
		{"write past NSZE", ctrl.Write(0, ns, 1<<40, buf), nvme.StatusLBAOutOfRange},
		{"invalid NSID", ctrl.Read(0, initiator.Namespace{ID: 2, BlockShift: 12}, 0, buf), nvme.StatusInvalidNamespace},
		{"unknown opcode", func() error {
			_, err := ctrl.IOQueue(0).Submit(nvme.Command{Opcode: 0x7E, NSID: 1}, nil, false)
			return err
		}(), nvme.StatusInvalidOpcode},
		{"unknown admin opcode", func() error {
			_, err := ctrl.Admin().Submit(nvme.Command{Opcode: 0x04}, nil, false) // delete I/O CQ: not on fabrics
			return err
		}(), nvme.StatusInvalidOpcode},
	}
	for _, c := range cases {
		var se *nvme.StatusError
		if !errors.As(c.err, &se) || se.Status != c.want {
			t.Errorf("%s: %v, want %s", c.name, c.err, c.want)
		}
	}
	// The queue survives command errors.
	if err := ctrl.Write(0, ns, 0, buf); err != nil {
		t.Fatal(err)
	}
}

// A file namespace: data written and flushed survives a restart of the
// target on the same file.
func TestFileNamespaceSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ns0")
	data := bytes.Repeat([]byte("zflow nvme/tcp! "), 64<<10/16)
	for round := range 2 {
		f, err := target.OpenFile(path, 8<<20)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprintf("round=%d", round), func(t *testing.T) {
			addr, _ := serve(t, 0, target.Config{Namespaces: []target.Namespace{f}})
			ctrl := connect(t, addr, initiator.Config{})
			ns, err := ctrl.Namespace(1)
			if err != nil {
				t.Fatal(err)
			}
			if ns.BlockShift != 9 || ns.Blocks != 8<<20>>9 {
				t.Fatalf("file namespace %+v", ns)
			}
			if round == 0 {
				if err := ctrl.Write(0, ns, 100, data); err != nil {
					t.Fatal(err)
				}
				if err := ctrl.Flush(0, ns); err != nil {
					t.Fatal(err)
				}
				return
			}
			got := make([]byte, len(data))
			if err := ctrl.Read(0, ns, 100, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("data written and flushed before the restart reads back different")
			}
		})
		f.Close()
	}
}

// cutConn is a real TCP connection that closes itself once limit bytes have
// been written through it: a connection dropped mid-transfer.
type cutConn struct {
	net.Conn
	mu   sync.Mutex
	left int
}

func (c *cutConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(b) >= c.left {
		n, _ := c.Conn.Write(b[:c.left])
		c.left = 0
		c.Conn.Close()
		return n, net.ErrClosed
	}
	c.left -= len(b)
	return c.Conn.Write(b)
}

// A connection dropped in the middle of a write's H2CData: the write fails
// with an error, later commands on that queue fail at once, the other
// queue and the target carry on, and nothing leaks (TestMain checks
// goroutines).
func TestDroppedConnection(t *testing.T) {
	addr, _ := serve(t, 4<<20, target.Config{MaxH2CData: 8192})
	var dials atomic.Int32
	cfg := initiator.Config{IOQueues: 2, Dial: func(ctx context.Context, a string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", a)
		if err != nil || dials.Add(1) != 2 { // the first I/O queue's connection is the one cut
			return nc, err
		}
		return &cutConn{Conn: nc, left: 64 << 10}, nil
	}}
	ctrl := connect(t, addr, cfg)
	ns, err := ctrl.Namespace(1)
	if err != nil {
		t.Fatal(err)
	}
	err = ctrl.Write(0, ns, 0, make([]byte, 256<<10))
	if err == nil {
		t.Fatal("a write whose connection dropped succeeded")
	}
	if err := ctrl.Read(0, ns, 0, make([]byte, 4096)); err == nil {
		t.Fatal("a read on the dead queue succeeded")
	}
	buf := bytes.Repeat([]byte{1}, 256<<10)
	if err := ctrl.Write(1, ns, 0, buf); err != nil {
		t.Fatalf("the other queue: %v", err)
	}
	got := make([]byte, len(buf))
	if err := ctrl.Read(1, ns, 0, got); err != nil || !bytes.Equal(got, buf) {
		t.Fatalf("the other queue reads back: %v", err)
	}
	ctrl.Close()
}
