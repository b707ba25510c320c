// Package auth holds dg's service accounts: the bootstrap file format
// (the reference's JSON document plus token_sha256 entries), the rules
// that normalise and validate it, token hashing and constant-time lookup,
// the built-in development accounts, the bootstrap precedence
// (DECISION_GRAPH_SERVICE_ACCOUNTS_JSON, then a file, then the development
// accounts) and a Registry that reloads the file without a restart.
//
// It sits below both pkg/server (which authenticates requests with it) and
// pkg/ops (which writes bootstrap files), so neither has to import the
// other. It imports no HTTP or CLI code.
package auth
