package manifest

import _ "embed"

// builtinYAML is manifests/local.yaml, embedded so that dg runs outside a
// checkout. TestEmbeddedMatchesLocal keeps the two identical.
//
//go:embed embedded/local.yaml
var builtinYAML []byte

// BuiltinYAML returns a copy of the embedded default manifest.
func BuiltinYAML() []byte { return append([]byte(nil), builtinYAML...) }
