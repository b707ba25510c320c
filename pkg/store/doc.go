// Package store is dg's PostgreSQL event log: embedded forward-only
// migrations, the single group-commit appender that applies the append rules
// of the events spec (§10) and the hash chain, read queries, the log
// verifier, and MemLog, an in-memory log with the same rules for offline use.
//
// The log is append-only: store never updates or deletes an event, and the
// database rejects UPDATE, DELETE and TRUNCATE on dg_event_log by trigger.
// Rule failures are returned as *event.Error; everything else is an
// operational error wrapped with context.
package store
