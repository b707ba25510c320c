package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/decisiongraph/dg/internal/sysx"
)

// Datasets lists the seed datasets dg knows.
func Datasets() []string { return []string{"release-demo"} }

// locate finds where to report a problem about the first path: the
// variable that set it, its position in the file, or the position of the
// nearest enclosing section. Further paths are tried (exactly) before the
// enclosing sections of the first, so a cross-field rule can point at the
// field that caused it.
func (l *loader) locate(paths ...string) (file string, line, col int) {
	exact := func(p string) (string, int, int, bool) {
		if s, ok := l.m.sources[p]; ok && s.Kind == SourceEnv {
			return "env " + s.Origin, 0, 0, true
		}
		if pos, ok := l.pos[p]; ok {
			return l.name, pos.line, pos.col, true
		}
		return "", 0, 0, false
	}
	for _, p := range paths {
		if f, ln, c, ok := exact(p); ok {
			return f, ln, c
		}
	}
	for p := parentPath(paths[0]); p != ""; p = parentPath(p) {
		if f, ln, c, ok := exact(p); ok {
			return f, ln, c
		}
	}
	return l.name, 0, 0
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// report adds a diagnostic about path, located by locate(path, also...).
// A path that already has an error (say, an unset ${VAR}) gets no more
// diagnostics: they would only restate the first.
func (l *loader) report(sev Severity, path string, also []string, msg, hint string) {
	for _, d := range l.diags {
		if d.Path == path && d.Severity == SeverityError {
			return
		}
	}
	file, line, col := l.locate(append([]string{path}, also...)...)
	l.add(Diagnostic{File: file, Line: line, Column: col, Path: path, Message: msg, Hint: hint, Severity: sev})
}

func (l *loader) errorf(path, hint, format string, args ...any) {
	l.report(SeverityError, path, nil, fmt.Sprintf(format, args...), hint)
}

// checkFields applies the per-field constraints from the struct tags (enum,
// min, max, pattern, unique, format) to the effective values, whatever
// their source.
func (l *loader) checkFields() {
	root := reflect.ValueOf(l.m).Elem()
	for _, f := range manifestFields() {
		l.checkField(f, root.FieldByIndex(f.index))
	}
	for i, w := range l.m.Workflows.Notifications.Webhooks {
		l.checkWebhook(i, w)
	}
}

func (l *loader) checkField(f field, v reflect.Value) {
	switch f.kind {
	case kindString:
		s := v.String()
		if len(f.enum) > 0 {
			l.checkEnum(f.path, f.enum, s)
		}
		switch f.format {
		case "hostport":
			l.checkHostPort(f.path, s)
		case "url":
			l.checkPostgresURL(f.path, s)
		}
	case kindInt:
		n := v.Int()
		lo, hasLo := intTag(f.min)
		hi, hasHi := intTag(f.max)
		switch {
		case hasLo && hasHi && (n < lo || n > hi):
			l.errorf(f.path, "", "must be between %d and %d, got %d", lo, hi, n)
		case hasLo && n < lo:
			l.errorf(f.path, "", "must be at least %d, got %d", lo, n)
		}
	case kindDuration:
		d := time.Duration(v.Int())
		if lo, err := ParseDuration(f.min); f.min != "" && err == nil && d < lo {
			l.errorf(f.path, durationHint, "must be at least %s, got %s", f.min, FormatDuration(d))
		}
	case kindBytes:
		if lo, ok := intTag(f.min); ok && v.Int() < lo {
			l.errorf(f.path, bytesHint, "must be at least %d bytes, got %d", lo, v.Int())
		}
	case kindStringList:
		l.checkList(f, v.Interface().([]string))
	}
}

func intTag(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func (l *loader) checkEnum(path string, enum []string, s string) {
	if slices.Contains(enum, s) {
		return
	}
	hint := "one of: " + strings.Join(enum, ", ")
	if g := suggest(s, enum); g != "" {
		hint = fmt.Sprintf("did you mean %q?", g)
	}
	l.errorf(path, hint, "must be one of %s, got %q", strings.Join(enum, ", "), s)
}

func (l *loader) checkList(f field, items []string) {
	var re *regexp.Regexp
	if f.pattern != "" {
		re = regexp.MustCompile(f.pattern)
	}
	first := map[string]int{}
	for i, s := range items {
		ipath := fmt.Sprintf("%s[%d]", f.path, i)
		if j, dup := first[s]; dup && f.unique {
			l.report(SeverityError, ipath, nil, fmt.Sprintf("duplicate entry %q (also item %d)", s, j), "list each entry once")
			continue
		}
		first[s] = i
		if len(f.enum) > 0 {
			l.checkEnum(ipath, f.enum, s)
		} else if re != nil && !re.MatchString(s) {
			l.report(SeverityError, ipath, nil, fmt.Sprintf("%q is not a valid name", s),
				"use lower-case letters, digits, '-' and '_', starting with a letter or digit")
		}
	}
}

func (l *loader) checkHostPort(path, s string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		l.errorf(path, "write host:port, e.g. 127.0.0.1:4100 or 0.0.0.0:4100", "must be host:port, got %q", s)
		return
	}
	_ = host
	n, err := strconv.Atoi(port)
	if err != nil {
		l.errorf(path, "", "port %q is not a number", port)
		return
	}
	if n < 1 || n > 65535 {
		l.errorf(path, "", "port %d is out of range (1-65535)", n)
	}
}

const postgresURLHint = "write postgres://user:password@host:5432/dbname"

// checkPostgresURL never echoes the URL: it may hold a password.
func (l *loader) checkPostgresURL(path, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		l.errorf(path, postgresURLHint, "is not a valid URL")
		return
	}
	switch u.Scheme {
	case "postgres", "postgresql":
	case "ecto":
		l.errorf(path, "the reference's ecto:// URLs are written postgres:// for dg", "scheme must be postgres or postgresql, got %q", u.Scheme)
	default:
		l.errorf(path, postgresURLHint, "scheme must be postgres or postgresql, got %q", u.Scheme)
	}
}

func (l *loader) checkWebhook(i int, w Webhook) {
	base := fmt.Sprintf("workflows.notifications.webhooks[%d]", i)
	if w.URL == "" {
		l.errorf(base+".url", "every webhook needs url: https://...", "is required")
	} else if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.errorf(base+".url", "write an absolute http(s) URL, e.g. https://hooks.example.com/dg", "must be an http or https URL")
	}
	f := field{path: base + ".categories", unique: true, enum: strings.Split("assignment,approval,deadline_risk,escalation,failure", ",")}
	l.checkList(f, w.Categories)
}

// checkRules applies the rules that involve more than one field or the
// host (directories).
func (l *loader) checkRules() {
	m := l.m
	if m.IsProd() {
		if m.Accounts.File == "" {
			l.report(SeverityError, "accounts.file", []string{"server.env"}, "is required when server.env is prod",
				"set accounts.file (or DECISION_GRAPH_SERVICE_ACCOUNTS_FILE); create the file with dg accounts bootstrap")
		}
		if n := len(m.Server.SecretKeyBase); n < MinSecretKeyBase {
			l.report(SeverityError, "server.secret_key_base", []string{"server.env"},
				fmt.Sprintf("must be at least %d characters when server.env is prod, got %d", MinSecretKeyBase, n),
				"generate one with: openssl rand -base64 48; pass it as SECRET_KEY_BASE")
		}
		if m.Server.DevTokens {
			l.report(SeverityError, "server.dev_tokens", nil, "must be false when server.env is prod",
				"the development tokens are public; remove dev_tokens or set it to false")
		}
	}
	switch m.Database.Mode {
	case ModeExternal:
		if m.Database.URL == "" {
			l.report(SeverityError, "database.url", []string{"database.mode"}, "is required when database.mode is external",
				"set database.url or DATABASE_URL to "+strings.TrimPrefix(postgresURLHint, "write "))
		}
	case ModeManaged:
		if m.Database.URL != "" {
			l.report(SeverityWarning, "database.url", nil, "is ignored when database.mode is managed",
				"set database.mode: external to use this URL, or unset DATABASE_URL")
		}
		if m.Database.Managed.Port == m.ServerPort() {
			l.report(SeverityError, "database.managed.port", []string{"server.listen"},
				fmt.Sprintf("must differ from the server port %d", m.ServerPort()), "the default managed port is 55433")
		}
		if m.Database.Managed.DataDir == "" {
			l.errorf("database.managed.data_dir", "the default is .dg/pgdata", "is required when database.mode is managed")
		} else {
			l.checkCreatable("database.managed.data_dir", m.Database.Managed.DataDir)
		}
	}
	if h := m.Server.PublicHost; strings.Contains(h, "/") || strings.Contains(h, " ") {
		l.errorf("server.public_host", "write just the host, e.g. dg.example.com", "must be a host name without scheme or path, got %q", h)
	}
	if e := m.Telemetry.OTLPEndpoint; e != "" {
		l.checkEndpoint(e)
	}
	if len(m.Tenants) == 0 {
		l.errorf("tenants", "write tenants: [default]", "must list at least one tenant")
	}
	r := m.Backup.Retention
	if max(r.KeepLast, r.KeepDaily, r.KeepWeekly, r.KeepMonthly) <= 0 {
		l.errorf("backup.retention", "set keep_last to at least 1", "keeps no backups at all")
	}
	if m.Backup.Dir == "" {
		l.errorf("backup.dir", "the default is .dg/backups", "must not be empty")
	} else {
		l.checkCreatable("backup.dir", m.Backup.Dir)
	}
	if m.Drill.ReportDir == "" {
		l.errorf("drill.report_dir", "the default is .dg/drills", "must not be empty")
	} else {
		l.checkCreatable("drill.report_dir", m.Drill.ReportDir)
	}
	if f := m.Accounts.File; f != "" {
		if _, err := os.Stat(f); err != nil {
			l.report(SeverityWarning, "accounts.file", nil, fmt.Sprintf("%s does not exist (yet)", f),
				"create it with dg accounts bootstrap before starting dg")
		}
	}
	for i, s := range m.Seed {
		if !slices.Contains(Datasets(), s) {
			hint := "known datasets: " + strings.Join(Datasets(), ", ")
			if g := suggest(s, Datasets()); g != "" {
				hint = fmt.Sprintf("did you mean %q?", g)
			}
			l.report(SeverityWarning, fmt.Sprintf("seed[%d]", i), nil, fmt.Sprintf("unknown dataset %q", s), hint)
		}
	}
}

func (l *loader) checkEndpoint(e string) {
	const hint = "write host:port (e.g. localhost:4317) or an http(s) URL (e.g. http://localhost:4318)"
	if strings.Contains(e, "://") {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			l.errorf("telemetry.otlp_endpoint", hint, "must be an http(s) URL or host:port, got %q", e)
		}
		return
	}
	if _, port, err := net.SplitHostPort(e); err != nil || port == "" {
		l.errorf("telemetry.otlp_endpoint", hint, "must be an http(s) URL or host:port, got %q", e)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		l.errorf("telemetry.otlp_endpoint", hint, "port %q is out of range (1-65535)", port)
	}
}

// checkCreatable reports a directory that dg could not create or write:
// the nearest existing ancestor must be a writable directory. Nothing is
// created.
func (l *loader) checkCreatable(path, dir string) {
	if err := creatable(dir); err != nil {
		l.errorf(path, "choose a directory dg can create and write", "cannot be created: %v", err)
	}
}

func creatable(dir string) error {
	p := filepath.Clean(dir)
	for {
		st, err := os.Stat(p)
		switch {
		case err == nil:
			if !st.IsDir() {
				return fmt.Errorf("%s is not a directory", p)
			}
			if err := sysx.Writable(p); err != nil {
				return fmt.Errorf("%s is not writable", p)
			}
			return nil
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		default:
			return err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return nil
		}
		p = parent
	}
}
