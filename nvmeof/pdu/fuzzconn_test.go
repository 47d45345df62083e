package pdu

import (
	"errors"
	"io"
	"testing"

	"github.com/zflowdev/zflow/nvmeof/nvme"
)

// connSides are the receivers FuzzConn reads a stream as: a controller
// (in-capsule and H2C data limits, as our target sets them) and a host
// (C2H data only, as our initiator sets it), each without and with
// digests.
var connSides = []struct {
	name   string
	recv   Options
	limits Limits
}{
	{"controller", Options{}, Limits{MaxInCapsule: 8192, MaxH2CData: 128 << 10}},
	{"controller+digests", Options{HeaderDigest: true, DataDigest: true}, Limits{MaxInCapsule: 8192, MaxH2CData: 128 << 10}},
	{"host", Options{}, Limits{MaxC2HData: 1 << 20}},
	{"host+digests", Options{HeaderDigest: true, DataDigest: true}, Limits{MaxC2HData: 1 << 20}},
}

// FuzzConn sends arbitrary bytes through a real loopback TCP connection to
// a Conn set up as each side of a queue sets it up, and reads PDUs as the
// target's and the initiator's readers do (ReadHeader, then the data)
// until the input ends or a read fails. It must never panic, never pass
// data over a limit, and fail only with a *Error, a data digest error or
// the end of the input. FuzzPDU covers the decoder alone; this covers
// the framing around it on both sides.
func FuzzConn(f *testing.F) {
	data := []byte("0123456789abcdef")
	dd := Options{HeaderDigest: true, DataDigest: true}
	f.Add(Encode(nil, &ICReq{Digest: DigestHeader | DigestData}, Options{}))
	f.Add(Encode(nil, &CapsuleCmd{SQE: nvme.Command{Opcode: 1, CID: 1, SGL: nvme.SGL{ID: nvme.SGLDataBlockOffset, Length: 16}}, Data: data}, Options{}))
	f.Add(Encode(nil, &Data{Dir: TypeH2CData, CCCID: 1, TTAG: 2, Last: true, Data: data}, dd))
	f.Add(append(Encode(nil, &Data{Dir: TypeC2HData, CCCID: 1, Data: data}, dd), Encode(nil, &CapsuleResp{CQE: nvme.Completion{CID: 1}}, dd)...))
	f.Add(Encode(nil, &TermReq{Dir: TypeC2HTermReq, FES: FESHeaderDigest, Data: data}, Options{}))
	a, b := tcpPair(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, s := range connSides {
			r := NewConn(b)
			r.Recv, r.Limits = s.recv, s.limits
			lr := io.LimitReader(b, int64(len(in))) // this input's bytes, no more
			r.r.Reset(lr)
			sent := make(chan error, 1)
			go func() { _, err := a.Write(in); sent <- err }()
			for {
				h, p, err := r.ReadHeader()
				if err != nil {
					var pe *Error
					if !errors.Is(err, io.EOF) && !errors.As(err, &pe) {
						t.Fatalf("%s: ReadHeader: %T %v", s.name, err, err)
					}
					break
				}
				if p == nil {
					t.Fatalf("%s: ReadHeader returned neither a PDU nor an error", s.name)
				}
				n := h.DataLen()
				if h.Type == TypeH2CTermReq || h.Type == TypeC2HTermReq || n <= 0 {
					continue
				}
				lim, limited := map[Type]uint32{TypeCapsuleCmd: s.limits.MaxInCapsule, TypeH2CData: s.limits.MaxH2CData, TypeC2HData: s.limits.MaxC2HData}[h.Type]
				if limited && uint64(n) > uint64(lim) {
					t.Fatalf("%s: %s with %d bytes of data passed a limit of %d", s.name, h.Type, n, lim)
				}
				if err := r.Discard(); err != nil {
					var pe *Error
					if !errors.Is(err, ErrDataDigest) && !errors.As(err, &pe) {
						t.Fatalf("%s: data: %T %v", s.name, err, err)
					}
					break
				}
			}
			io.Copy(io.Discard, lr) // what the reader left, so the next input starts clean
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
		}
	})
}
