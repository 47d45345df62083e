package pdu

import (
	"errors"
	"reflect"
	"testing"
)

// fuzzOptions are the receivers FuzzPDU decodes each input as.
var fuzzOptions = []Options{{}, {HeaderDigest: true}, {DataDigest: true}, {HeaderDigest: true, DataDigest: true, PDA: 1}}

// FuzzPDU decodes arbitrary bytes as both sides of a connection would: it
// must never panic, an error must be a *Error, and a PDU that decodes must
// encode into bytes that decode to the same PDU. Seeds in
// testdata/fuzz/FuzzPDU are every type, with and without digests.
func FuzzPDU(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, o := range fuzzOptions {
			p, n, err := Decode(b, o)
			if err != nil {
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("options %+v: error %T %v is not a *pdu.Error", o, err, err)
				}
				continue
			}
			if n <= 0 || n > len(b) {
				t.Fatalf("options %+v: took %d of %d bytes", o, n, len(b))
			}
			again, m, err := Decode(Encode(nil, p, o), o)
			if err != nil {
				t.Fatalf("options %+v: re-encoded %+v does not decode: %v", o, p, err)
			}
			if !reflect.DeepEqual(again, p) {
				t.Fatalf("options %+v: round trip %+v became %+v", o, p, again)
			}
			_ = m
		}
	})
}
