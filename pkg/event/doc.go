// Package event defines DecisionGraph's event envelope, the event types and
// their payload rules, validation, the two canonical JSON encodings, payload
// hashes and the hash chain.
//
// It is pure: no I/O, no clocks, no globals that change, no goroutines.
// Storage (pkg/store), projections and the HTTP server build on it and must
// not re-implement its rules.
//
// The pieces, in the order an event meets them:
//
//   - DecodeEnvelope / DecodeEvents (decode.go): strict JSON decoding of a
//     request body or fixture file, with the loader defaults of the events
//     spec §2.1 and JSON paths in every error;
//   - Validate / ValidateCanonical (validate.go, pii.go, timestamp.go): every
//     rule that needs no storage, in the reference's order, returning *Error
//     with one of the Code values;
//   - CanonicalJSON / PayloadHash (canonical.go): the payload-hash dialect
//     (events spec §8); the digest dialect of §9.2 lives in digestjson.go;
//   - IdempotencyMismatches / CheckSequence (idempotency.go): the pure parts
//     of the append rules of §10, for storage to apply inside its
//     transaction;
//   - EventHash / ChainGenesis / NextChainHash / VerifyStored (chain.go):
//     dg's tamper-evident hash chain, whose byte formats are documented on
//     each function;
//   - EncodeEnvelope / EncodeStoredEvent (encode.go): JSON for responses
//     that keeps every number literal as received.
package event
