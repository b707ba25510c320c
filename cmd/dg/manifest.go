package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/decisiongraph/dg/pkg/manifest"
)

// Where dg looks for a manifest when -f (or DG_MANIFEST) is not given, in
// order; when none exists the embedded default is used.
var manifestSearchPath = [...]string{"dg.yaml", "manifests/local.yaml"}

// manifestLocation resolves which manifest to load: -f, else DG_MANIFEST,
// else the first of manifestSearchPath that exists, else "" meaning the
// built-in default.
func (a *app) manifestLocation() string {
	if a.opts.manifestPath != "" {
		return a.opts.manifestPath
	}
	if p, ok := a.env("DG_MANIFEST"); ok && p != "" {
		return p
	}
	for _, p := range manifestSearchPath {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// readManifest loads the manifest at path ("" = built-in) without printing.
// It returns the name used in diagnostics. A file that cannot be read is a
// usage error (exit 2).
func (a *app) readManifest(path string) (*manifest.Manifest, manifest.Diagnostics, string, error) {
	if path == "" {
		m, diags, err := manifest.LoadBuiltin(a.env)
		return m, diags, manifest.BuiltinName, err
	}
	m, diags, err := manifest.Load(path, a.env)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, path, usageError(fmt.Errorf("manifest %s does not exist: pass an existing file with -f, or run dg where dg.yaml is", path))
		}
		return nil, nil, path, usageError(err)
	}
	return m, diags, path, nil
}

// loadManifest resolves, loads and validates the manifest for a command.
// Diagnostics go to stderr (text, or JSON with -o json); when there are
// errors it returns configInvalid (exit 2). Warnings are printed and the
// manifest is returned.
func (a *app) loadManifest() (*manifest.Manifest, error) {
	m, diags, name, err := a.readManifest(a.manifestLocation())
	if err != nil {
		return nil, err
	}
	if len(diags) > 0 {
		if a.jsonOutput() {
			_ = manifest.NewReport(name, diags).WriteJSON(a.stderr)
		} else {
			_ = diags.WriteText(a.stderr)
		}
	}
	if diags.HasErrors() {
		if !a.jsonOutput() {
			fmt.Fprintf(a.stderr, "dg: manifest %s is invalid (%s); fix it, then check with dg validate\n", name, diags.Summary())
		}
		return nil, configInvalid()
	}
	return m, nil
}
