package server

import "syscall"

// setCork sets or clears TCP_CORK on the connection: while it is set the
// kernel sends only full segments, so a response written in several
// write calls leaves as one burst when it is cleared.
func setCork(rc syscall.RawConn, on bool) bool {
	v := 0
	if on {
		v = 1
	}
	ok := false
	if err := rc.Control(func(fd uintptr) {
		ok = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v) == nil
	}); err != nil {
		return false
	}
	return ok
}
