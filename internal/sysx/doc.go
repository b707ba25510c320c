// Package sysx holds the few operating-system calls dg needs that differ
// between platforms: advisory file locks, permission and disk-space probes,
// file ownership, and running a child as another user. The server side of
// dg (managed PostgreSQL, backups) targets Linux; these wrappers let the
// same code build for macOS and Windows, where the Unix-only parts report
// that they are unsupported instead of failing to compile.
package sysx

import "errors"

// ErrLocked is returned by LockFile when another process holds the lock.
var ErrLocked = errors.New("file is locked by another process")

// ErrUnsupported is returned where a platform lacks a facility.
var ErrUnsupported = errors.New("not supported on this platform")
