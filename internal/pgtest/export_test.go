package pgtest

// ReapStale exposes the stale-cluster reaper to the external tests.
var ReapStale = reapStale
