// Package ops holds dg's operational machinery: the managed PostgreSQL
// cluster (finding server binaries, initdb, start, stop, status) and the
// host checks behind `dg doctor`. Later parts add backup, restore and drills.
//
// The cluster code is shared by `dg db start|stop|status`, `dg up` and the
// throwaway test clusters of internal/pgtest, so every path that starts
// PostgreSQL runs the same initdb options, the same privilege drop and the
// same readiness wait.
//
// This package must never import cobra or viper or read the manifest:
// configuration arrives as typed structs (ClusterConfig, DoctorConfig).
// Failures callers branch on are sentinel errors (ErrBinariesMissing,
// ErrPortInUse, ErrForeignOwner, ErrNewerDataDir, ErrLocked...) wrapped with context;
// use errors.Is to map them to exit codes and messages.
package ops
