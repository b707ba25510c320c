// Package manifest loads dg's topology manifest: one YAML file that says how a
// dg node is laid out (listener, database, accounts, tenants, telemetry,
// backups, drills, projections, workflows).
//
// Load and LoadBytes parse the file with positions kept, apply ${VAR}
// interpolation, defaults and environment overrides, and validate the result.
// Every problem is returned at once as Diagnostics, each naming the file,
// line, column and field path, so that `dg validate` can report them all and
// every other command can refuse an invalid manifest with the same report.
//
// The package never imports cobra or viper and never changes anything on
// disk: validation only looks (it stats directories, it does not create
// them). Consumers receive a typed *Manifest.
package manifest
