// Package projection derives DecisionGraph's read models from the event log:
// the context graph (nodes and edges), trace summaries and the precedent
// index, plus their SHA-256 digests (events spec §9, §12).
//
// The rules are pure Go: Projector.Step turns one stored event into a
// Changes value, and a row store (in memory, or Postgres tables) applies it.
// Every row store must give identical digests for the same log; tests hold
// them to that. Nothing here is a source of truth: every row can be dropped
// and rebuilt from the log. This package never modifies the event log and
// never imports cobra or viper.
package projection
