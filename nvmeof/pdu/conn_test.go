package pdu

import (
	"bytes"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"

	"github.com/zflowdev/zflow/nvmeof/nvme"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpPair returns both ends of a real loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := ln.Accept(); ch <- res{c, err} }()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { a.Close(); r.c.Close() })
	return a, r.c
}

// Every PDU type crosses a real socket through Conn, under each digest
// setting, and comes out equal; C2HData lands straight in the caller's
// buffer.
func TestConnRoundTrip(t *testing.T) {
	for _, o := range []Options{{}, {HeaderDigest: true, DataDigest: true}, {HeaderDigest: true, PDA: 3}} {
		a, b := tcpPair(t)
		w, r := NewConn(a), NewConn(b)
		w.Send, r.Recv = o, o
		r.Limits = Limits{MaxInCapsule: 8192, MaxH2CData: 1 << 20, MaxC2HData: 1 << 20}
		big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16) // 64 KiB: more than the read buffer
		small := []byte("in-capsule data")
		pdus := []PDU{
			&CapsuleCmd{SQE: nvme.Command{Opcode: 1, CID: 1, SGL: nvme.SGL{ID: nvme.SGLDataBlockOffset, Length: uint32(len(small))}}, Data: small},
			&CapsuleCmd{SQE: nvme.Command{Opcode: 2, CID: 2}},
			&CapsuleResp{CQE: nvme.Completion{CID: 2, SQHD: 1}},
			&R2T{CCCID: 3, TTAG: 4, R2TL: uint32(len(big))},
			&Data{Dir: TypeH2CData, CCCID: 3, TTAG: 4, Last: true, Data: big},
			&Data{Dir: TypeC2HData, CCCID: 5, Last: true, Data: big},
			&TermReq{Dir: TypeH2CTermReq, FES: FESPDUSequence, Data: []byte{1, 2, 3}},
		}
		errc := make(chan error, 1)
		go func() {
			for _, p := range pdus {
				if err := w.Write(p); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		for _, want := range pdus {
			if d, ok := want.(*Data); ok && d.Dir == TypeC2HData {
				// The host's way: header first, data into its own buffer.
				h, p, err := r.ReadHeader()
				if err != nil {
					t.Fatal(err)
				}
				dst := make([]byte, h.DataLen())
				if err := r.ReadData(dst); err != nil {
					t.Fatal(err)
				}
				p.(*Data).Data = dst
				if !reflect.DeepEqual(p, want) {
					t.Errorf("options %+v: C2HData differs", o)
				}
				continue
			}
			got, err := r.ReadPDU()
			if err != nil {
				t.Fatalf("options %+v: %s: %v", o, want.PDUType(), err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("options %+v: got %+v, want %+v", o, got, want)
			}
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		w.Close()
		if _, _, err := r.ReadHeader(); err != io.EOF {
			t.Errorf("after the peer closed: %v, want io.EOF", err)
		}
	}
}

// A PDU whose plen promises more data than negotiated is refused from its
// 8-byte header (FES 5), before anything is allocated or read; the TermReq
// sent back carries FES, FEI and the offending header.
func TestConnLimits(t *testing.T) {
	a, b := tcpPair(t)
	host, ctrl := NewConn(a), NewConn(b)
	ctrl.Limits = Limits{MaxInCapsule: 8192, MaxH2CData: 4096}
	// A CapsuleCmd claiming 4 GiB - 1 of in-capsule data.
	raw := Encode(nil, &CapsuleCmd{SQE: nvme.Command{CID: 1}, Data: []byte{1, 2, 3, 4}}, Options{})
	raw[4], raw[5], raw[6], raw[7] = 0xff, 0xff, 0xff, 0xff
	if _, err := a.Write(raw[:8]); err != nil {
		t.Fatal(err)
	}
	_, _, err := ctrl.ReadHeader()
	var pe *Error
	if !errors.As(err, &pe) || pe.FES != FESDataLimitExceeded || pe.FEI != OffPLen {
		t.Fatalf("got %v, want FES 5 at plen", err)
	}
	go ctrl.Terminate(TypeC2HTermReq, err)
	p, err := host.ReadPDU()
	if err != nil {
		t.Fatal(err)
	}
	term, ok := p.(*TermReq)
	if !ok || term.Dir != TypeC2HTermReq || term.FES != FESDataLimitExceeded || term.FEI != OffPLen || !bytes.Equal(term.Data, raw[:8]) {
		t.Fatalf("got %+v, want a C2HTermReq FES 5 FEI 4 with the 8 header bytes", p)
	}
	if _, _, err := host.ReadHeader(); err != io.EOF {
		t.Errorf("after a TermReq: %v, want the connection closed", err)
	}
}

// A header digest that does not match, and a stream cut inside a PDU, are
// errors with the PDU and field named.
func TestConnCorruption(t *testing.T) {
	o := Options{HeaderDigest: true, DataDigest: true}
	cases := []struct {
		name  string
		edit  func([]byte) []byte
		field string
		fes   uint16
	}{
		{"header digest", func(b []byte) []byte { b[25] ^= 1; return b }, "header digest", FESHeaderDigest},
		{"data digest", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, "data digest", 0},
		{"payload", func(b []byte) []byte { b[30] ^= 1; return b }, "data digest", 0},
		{"cut in the data", func(b []byte) []byte { return b[:40] }, "plen", 0},
		{"cut in the header", func(b []byte) []byte { return b[:12] }, "plen", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := tcpPair(t)
			r := NewConn(b)
			r.Recv, r.Limits = o, Limits{MaxH2CData: 4096}
			raw := c.edit(Encode(nil, &Data{Dir: TypeH2CData, CCCID: 1, Last: true, Data: bytes.Repeat([]byte{7}, 64)}, o))
			if _, err := a.Write(raw); err != nil {
				t.Fatal(err)
			}
			a.Close()
			_, err := r.ReadPDU()
			var pe *Error
			if !errors.As(err, &pe) || pe.Field != c.field || pe.FES != c.fes || pe.PDU != TypeH2CData {
				t.Fatalf("got %v, want %s with FES %d", err, c.field, c.fes)
			}
		})
	}
}

// Writing from many goroutines never interleaves PDUs.
func TestConnConcurrentWrites(t *testing.T) {
	a, b := tcpPair(t)
	w, r := NewConn(a), NewConn(b)
	r.Limits.MaxC2HData = 1 << 16
	const writers, each = 8, 50
	done := make(chan error, writers)
	for i := range writers {
		go func() {
			data := bytes.Repeat([]byte{byte(i)}, 1000+i)
			for j := range each {
				if err := w.Write(&Data{Dir: TypeC2HData, CCCID: uint16(i), DataO: uint32(j), Data: data}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	next := make([]uint32, writers)
	for range writers * each {
		p, err := r.ReadPDU()
		if err != nil {
			t.Fatal(err)
		}
		d := p.(*Data)
		i := int(d.CCCID)
		if d.DataO != next[i] || len(d.Data) != 1000+i || d.Data[0] != byte(i) || d.Data[len(d.Data)-1] != byte(i) {
			t.Fatalf("writer %d PDU %d came out garbled", i, next[i])
		}
		next[i]++
	}
	for range writers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
