package manifest

import (
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
)

// envOverride maps one of the reference system's environment variables to
// the manifest field it overrides.
type envOverride struct{ name, path string }

// referenceEnv lists the reference's variables dg honours. PORT is special:
// it replaces only the port of server.listen.
func referenceEnv() []envOverride {
	return []envOverride{
		{"DATABASE_URL", "database.url"},
		{"SECRET_KEY_BASE", "server.secret_key_base"},
		{"PHX_HOST", "server.public_host"},
		{"PORT", "server.listen"},
		{"POOL_SIZE", "database.pool_size"},
		{"DECISION_GRAPH_SERVICE_ACCOUNTS_FILE", "accounts.file"},
		{"DECISION_GRAPH_OPERATOR_ACCOUNT_ID", "accounts.operator_account_id"},
	}
}

// EnvVars lists every environment variable that overrides a manifest field,
// with the field path: the reference's variables first (in the order they
// are applied), then the DG_<FIELD_PATH> variables.
func EnvVars() [][2]string {
	var out [][2]string
	for _, o := range referenceEnv() {
		out = append(out, [2]string{o.name, o.path})
	}
	for _, f := range manifestFields() {
		if f.kind != kindWebhooks {
			out = append(out, [2]string{f.envName(), f.path})
		}
	}
	return out
}

// applyEnv applies environment overrides: the reference's variables first,
// then DG_<FIELD_PATH>, so a DG_ variable wins over the reference variable
// for the same field. Empty variables count as unset.
func (l *loader) applyEnv() {
	byPath := map[string]field{}
	fields := manifestFields()
	for _, f := range fields {
		byPath[f.path] = f
	}
	for _, o := range referenceEnv() {
		v, ok := l.env(o.name)
		if !ok || v == "" {
			continue
		}
		if o.name == "PORT" {
			l.applyPort(v)
			continue
		}
		l.setFromEnv(byPath[o.path], o.name, v)
	}
	for _, f := range fields {
		if f.kind == kindWebhooks {
			continue // lists of mappings are set in the file only
		}
		name := f.envName()
		if v, ok := l.env(name); ok && v != "" {
			l.setFromEnv(f, name, v)
		}
	}
}

func (l *loader) envDiag(name, path, msg, hint string) {
	l.add(Diagnostic{File: "env " + name, Path: path, Message: msg, Hint: hint, Severity: SeverityError})
}

func (l *loader) setFromEnv(f field, name, v string) {
	dst := reflect.ValueOf(l.m).Elem().FieldByIndex(f.index)
	if msg, hint := setScalar(f, v, dst); msg != "" {
		l.envDiag(name, f.path, msg, hint)
		return
	}
	l.setSource(f.path, Source{Kind: SourceEnv, Origin: name})
}

// setSource records an override and forgets the file positions of the
// value it replaced, so diagnostics point at the variable.
func (l *loader) setSource(path string, s Source) {
	l.m.sources[path] = s
	for p := range l.pos {
		if p == path || strings.HasPrefix(p, path+"[") || strings.HasPrefix(p, path+".") {
			delete(l.pos, p)
		}
	}
}

func (l *loader) applyPort(v string) {
	port, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || port < 1 || port > 65535 {
		l.envDiag("PORT", "server.listen", fmt.Sprintf("PORT must be a port number between 1 and 65535, got %q", v), "")
		return
	}
	host, _, err := net.SplitHostPort(l.m.Server.Listen)
	if err != nil {
		host = ""
	}
	l.m.Server.Listen = net.JoinHostPort(host, strconv.Itoa(port))
	l.setSource("server.listen", Source{Kind: SourceEnv, Origin: "PORT"})
}

// applyDependentDefaults sets the defaults that depend on server.env.
func (l *loader) applyDependentDefaults() {
	dev := !l.m.IsProd()
	if _, set := l.m.sources["server.dev_tokens"]; !set {
		l.m.Server.DevTokens = dev
	}
	if _, set := l.m.sources["projections.allow_rebuild"]; !set {
		l.m.Projections.AllowRebuild = dev
	}
}
