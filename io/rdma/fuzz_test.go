//go:build linux

package rdma

import (
	"bytes"
	"testing"
)

// FuzzControl feeds arbitrary bytes to the control-frame reader and the
// payload parsers: an error or a frame, never a panic, never a payload
// longer than its type allows.
func FuzzControl(f *testing.F) {
	f.Add(putCtl(ctlHello, helloPayload()))
	f.Add(putCtl(ctlSetup, setup{rkey: 7, window: 1 << 20, qpPort: 9, recvs: 4}.payload()))
	f.Add(putCtl(ctlCredit, pair(1<<20, 64)))
	f.Add(putCtl(ctlVerbs, verbsPayload(QPInfo{QPN: 17, PSN: 3})))
	f.Add(putCtl(ctlError, []byte("disk full")))
	f.Add([]byte{9, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			typ, p, err := readCtl(r)
			if err != nil {
				return
			}
			if lo, hi := ctlLimit(typ); len(p) < lo || len(p) > hi {
				t.Fatalf("%s frame with a %d-byte payload passed (want %d to %d)", typ, len(p), lo, hi)
			}
			switch typ {
			case ctlHello:
				checkHello(p)
			case ctlSetup:
				parseSetup(p)
			case ctlVerbs:
				parseVerbs(p)
			case ctlCredit, ctlEnd, ctlEndAck:
				unpair(p)
			}
		}
	})
}

// FuzzWire feeds arbitrary bytes to the QP header parser.
func FuzzWire(f *testing.F) {
	var h [wireHeader]byte
	(&wireMsg{kind: reqWriteImm, flags: flagPlaced, psn: 1, rkey: 0x1001, off: 64, length: 4096, imm: 8}).put(h[:])
	f.Add(h[:])
	(&wireMsg{kind: respNak, status: RemAccessErr, psn: 2, length: 12}).put(h[:])
	f.Add(h[:])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseWire(b)
		if err != nil {
			return
		}
		var out [wireHeader]byte
		m.put(out[:])
		if !bytes.Equal(out[:], b[:wireHeader]) {
			t.Fatalf("header %x parsed to %+v, which writes back as %x", b[:wireHeader], m, out)
		}
	})
}
