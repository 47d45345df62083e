//go:build linux

package netzc

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestAutoTurnsToCopy: on loopback the kernel copies every zero-copy send;
// once auto has seen it copy the first copiedProbe of them, it sends by
// copy, says why, and still delivers every byte and runs every release.
func TestAutoTurnsToCopy(t *testing.T) {
	c, s := pair(t)
	defer s.Close()
	snd, err := New(c, Auto, Options{Threshold: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if snd.Mode() != Auto || !strings.Contains(snd.Reason(), "msg_zerocopy") {
		t.Skipf("auto did not choose msg_zerocopy here: %s", snd.Reason())
	}
	got := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, s)
		got <- n
	}()
	msg := make([]byte, 64<<10)
	released := 0
	release := func() { released++ }
	for range copiedProbe {
		if err := snd.Send([][]byte{msg}, release); err != nil {
			t.Fatal(err)
		}
	}
	if err := snd.Flush(context.Background()); err != nil { // every completion is in
		t.Fatal(err)
	}
	if err := snd.Send([][]byte{msg}, release); err != nil { // judged here
		t.Fatal(err)
	}
	zc := snd.Stats().ZeroCopySends
	for range 4 {
		if err := snd.Send([][]byte{msg}, release); err != nil {
			t.Fatal(err)
		}
	}
	st := snd.Stats()
	if st.ZeroCopySends != zc || !strings.Contains(snd.Reason(), "auto sends by copy") {
		t.Fatalf("after %d copied completions: %d zero-copy sends became %d, reason %q", st.CopiedCompletions, zc, st.ZeroCopySends, snd.Reason())
	}
	if err := snd.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if n, want := <-got, int64(len(msg)*(copiedProbe+5)); n != want || released != copiedProbe+5 || snd.Stats().Bytes != want {
		t.Fatalf("received %d of %d bytes, %d releases of %d, stats %+v", n, want, released, copiedProbe+5, snd.Stats())
	}
}
