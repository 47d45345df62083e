package ascii

import "testing"

func TestIs(t *testing.T) {
	s := []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!\x7f")
	for i := range len(s) + 1 {
		if !Is(s[:i]) {
			t.Fatalf("Is(%q) = false", s[:i])
		}
		for _, hi := range []byte{0x80, 0xc3, 0xff} {
			b := append([]byte(nil), s[:i]...)
			b = append(b, s[i:]...)
			if i < len(b) {
				b[i] = hi
				if Is(b) {
					t.Fatalf("Is with %#x at %d = true", hi, i)
				}
			}
		}
	}
}
