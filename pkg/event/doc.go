// Package event defines DecisionGraph's event envelope, the event types and
// their payload rules, validation, the two canonical JSON encodings, payload
// hashes and the hash chain. It is pure: no I/O, no clocks, no globals that
// change.
package event
