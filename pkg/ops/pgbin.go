package ops

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MinServerMajor is the oldest PostgreSQL major version dg supports.
const MinServerMajor = 14

// DefaultPostgresRoot is where Debian and Ubuntu install versioned server
// binaries (/usr/lib/postgresql/<major>/bin).
const DefaultPostgresRoot = "/usr/lib/postgresql"

// InstallHint tells an operator how to get the server binaries.
const InstallHint = "install PostgreSQL server binaries (Debian/Ubuntu: apt-get install -y postgresql) or set database.managed.bin_dir to the directory holding initdb, pg_ctl and postgres"

// serverTools are the programs a managed cluster needs; all must come from
// one directory so initdb, pg_ctl and postgres agree on the version.
var serverTools = []string{"initdb", "pg_ctl", "postgres"}

// BinarySearch says where to look for PostgreSQL binaries.
type BinarySearch struct {
	// BinDir, when set, is the only directory searched (database.managed.bin_dir).
	BinDir string
	// LookupEnv reads PATH; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Root holds versioned installs (<Root>/<major>/bin); empty means
	// DefaultPostgresRoot.
	Root string
}

// Binaries is a located set of PostgreSQL programs.
type Binaries struct {
	// Dir holds initdb, pg_ctl and postgres.
	Dir string
	// Version is the server version reported by `postgres --version`.
	Version Version
	// PgDump and PgRestore are the client tools used for backups: the ones
	// in Dir when present, else those on PATH; empty when not found.
	PgDump    string
	PgRestore string
}

// Path returns the full path of a program in the server directory.
func (b *Binaries) Path(name string) string { return filepath.Join(b.Dir, name) }

// Version is a PostgreSQL version such as 15.18.
type Version struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	return v.Minor < w.Minor
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?`)

// ParseVersion reads the output of `<tool> --version`.
func ParseVersion(out string) (Version, error) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return Version{}, fmt.Errorf("unrecognised version output %q", strings.TrimSpace(out))
	}
	major, _ := strconv.Atoi(m[1])
	minor := 0
	if m[2] != "" {
		minor, _ = strconv.Atoi(m[2])
	}
	return Version{Major: major, Minor: minor}, nil
}

// ToolVersion runs `<path> --version` and parses the answer.
func ToolVersion(ctx context.Context, path string) (Version, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return Version{}, fmt.Errorf("run %s --version: %w", path, err)
	}
	return ParseVersion(string(out))
}

// FindBinaries locates the server binaries: in BinDir only when it is set;
// else the directory of pg_ctl found on PATH (symlinks resolved, so a
// /usr/local/bin link leads to the real install), then
// <Root>/<major>/bin, newest major first. The error wraps
// ErrBinariesMissing and says how to install them.
func FindBinaries(ctx context.Context, s BinarySearch) (*Binaries, error) {
	lookup := s.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var candidates []string
	if s.BinDir != "" {
		candidates = []string{s.BinDir}
	} else {
		pathEnv, _ := lookup("PATH")
		for _, dir := range filepath.SplitList(pathEnv) {
			if dir == "" {
				continue
			}
			p := filepath.Join(dir, "pg_ctl")
			if !isExecutable(p) {
				continue
			}
			if real, err := filepath.EvalSymlinks(p); err == nil {
				candidates = append(candidates, filepath.Dir(real))
			}
		}
		root := s.Root
		if root == "" {
			root = DefaultPostgresRoot
		}
		candidates = append(candidates, versionedBinDirs(root)...)
	}
	var problems []string
	for _, dir := range candidates {
		missing := missingTools(dir)
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("%s lacks %s", dir, strings.Join(missing, ", ")))
			continue
		}
		b := &Binaries{Dir: dir}
		v, err := ToolVersion(ctx, b.Path("postgres"))
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		b.Version = v
		b.PgDump = findClientTool(dir, "pg_dump", lookup)
		b.PgRestore = findClientTool(dir, "pg_restore", lookup)
		return b, nil
	}
	where := "PATH and " + filepath.Join(orDefault(s.Root, DefaultPostgresRoot), "<version>", "bin")
	if s.BinDir != "" {
		where = "bin_dir " + s.BinDir
	}
	detail := ""
	if len(problems) > 0 {
		detail = " (" + strings.Join(problems, "; ") + ")"
	}
	return nil, fmt.Errorf("%w: searched %s%s; %s", ErrBinariesMissing, where, detail, InstallHint)
}

// versionedBinDirs lists <root>/<major>/bin directories, newest first.
func versionedBinDirs(root string) []string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	type cand struct {
		major int
		dir   string
	}
	var cs []cand
	for _, e := range entries {
		major, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cs = append(cs, cand{major, filepath.Join(root, e.Name(), "bin")})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].major > cs[j].major })
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.dir
	}
	return out
}

func missingTools(dir string) []string {
	var missing []string
	for _, t := range serverTools {
		if !isExecutable(filepath.Join(dir, t)) {
			missing = append(missing, t)
		}
	}
	return missing
}

// findClientTool prefers the copy next to the server, then PATH.
func findClientTool(dir, name string, lookup func(string) (string, bool)) string {
	if p := filepath.Join(dir, name); isExecutable(p) {
		return p
	}
	return LookPath(name, lookup)
}

// LookPath finds an executable on the PATH given by lookup (nil means the
// process environment). Unlike exec.LookPath it never consults the real
// process PATH when a different one is supplied.
func LookPath(name string, lookup func(string) (string, bool)) string {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	pathEnv, _ := lookup("PATH")
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			continue
		}
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
