//go:build !linux

package server

import "syscall"

// setCork does nothing where TCP_CORK does not exist.
func setCork(syscall.RawConn, bool) bool { return false }
