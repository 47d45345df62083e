//go:build !linux

package netzc

import (
	"fmt"
	"net"
	"runtime"
)

func newZeroCopy(conn *net.TCPConn, mode Mode, _ Options) (Sender, error) {
	if mode == Auto {
		return newCopy(conn, "send: auto chose copy: MSG_ZEROCOPY exists only on Linux, this is "+runtime.GOOS), nil
	}
	return nil, fmt.Errorf("%w: msg_zerocopy exists only on Linux, this is %s", ErrUnsupported, runtime.GOOS)
}
