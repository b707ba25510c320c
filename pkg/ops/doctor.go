package ops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/decisiongraph/dg/internal/sysx"
	"github.com/jackc/pgx/v5"
)

// CheckStatus is the verdict of one doctor check.
type CheckStatus string

const (
	Pass CheckStatus = "PASS"
	Warn CheckStatus = "WARN"
	Fail CheckStatus = "FAIL"
)

// Check is one host check: what was looked at, the verdict, what was found
// and, unless it passed, how to fix it.
type Check struct {
	ID      string      `json:"id"`
	Status  CheckStatus `json:"status"`
	Message string      `json:"message"`
	Fix     string      `json:"fix,omitempty"`
}

// DoctorSummary counts the verdicts.
type DoctorSummary struct {
	Pass int `json:"pass"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
}

// DoctorReport is the result of Doctor; OK is false when any check failed.
type DoctorReport struct {
	OK      bool          `json:"ok"`
	Mode    string        `json:"mode"`
	Summary DoctorSummary `json:"summary"`
	Checks  []Check       `json:"checks"`
}

// Default disk thresholds: below DefaultDiskFail a check fails, below
// DefaultDiskWarn it warns.
const (
	DefaultDiskFail uint64 = 512 << 20
	DefaultDiskWarn uint64 = 2 << 30
)

// DoctorConfig is what doctor checks, mapped from the manifest by the
// caller.
type DoctorConfig struct {
	// External selects external mode (database.mode: external): no cluster
	// checks, a reachability check of ExternalURL instead.
	External    bool
	ExternalURL string
	// Cluster holds the managed cluster settings (DataDir, Port, BinDir,
	// RunAs, LookupEnv, SearchRoot are used).
	Cluster ClusterConfig
	// ServerListen is the API's host:port (server.listen); empty skips it.
	ServerListen string
	// BackupDir is checked for free space; empty skips it.
	BackupDir string
	// AccountsFile is the service-account file; empty means none configured.
	AccountsFile string
	// DiskFail and DiskWarn are free-space thresholds in bytes (0: defaults).
	DiskFail, DiskWarn uint64
	// ConnectTimeout bounds the external reachability check (default 5s).
	ConnectTimeout time.Duration
}

// Doctor runs the host checks. It changes nothing on the host.
func Doctor(ctx context.Context, cfg DoctorConfig) DoctorReport {
	if cfg.DiskFail == 0 {
		cfg.DiskFail = DefaultDiskFail
	}
	if cfg.DiskWarn == 0 {
		cfg.DiskWarn = DefaultDiskWarn
	}
	if cfg.DiskWarn < cfg.DiskFail {
		cfg.DiskWarn = cfg.DiskFail
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	d := &doctor{cfg: cfg}
	rep := DoctorReport{Mode: "managed"}
	if cfg.External {
		rep.Mode = "external"
		d.userExternal()
		d.reachable(ctx)
		d.clientTools(ctx, d.serverVersion, "the server at database.url")
	} else {
		d.binaries(ctx)
		d.clientTools(ctx, d.serverVersion, "the managed server")
		d.user()
		d.dataDir()
		d.postgresPort(ctx)
	}
	d.serverPort()
	if !cfg.External && cfg.Cluster.DataDir != "" {
		d.disk("disk.data_dir", "data directory", cfg.Cluster.DataDir)
	}
	if cfg.BackupDir != "" {
		d.disk("disk.backup_dir", "backup directory", cfg.BackupDir)
	}
	d.accountsFile()

	rep.Checks = d.checks
	for _, c := range d.checks {
		switch c.Status {
		case Pass:
			rep.Summary.Pass++
		case Warn:
			rep.Summary.Warn++
		case Fail:
			rep.Summary.Fail++
		}
	}
	rep.OK = rep.Summary.Fail == 0
	return rep
}

type doctor struct {
	cfg    DoctorConfig
	checks []Check
	bin    *Binaries
	// serverVersion is the version client tools must not be older than:
	// the managed binaries' or the external server's.
	serverVersion *Version
	runUser       *runUser
}

func (d *doctor) add(id string, st CheckStatus, msg, fix string) {
	d.checks = append(d.checks, Check{ID: id, Status: st, Message: oneLine(msg), Fix: fix})
}

// oneLine folds multi-line error texts (pgx lists every address it tried)
// into one line so the report stays a table; repeated lines are dropped.
func oneLine(s string) string {
	var parts []string
	seen := map[string]bool{}
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || seen[l] {
			continue
		}
		seen[l] = true
		parts = append(parts, l)
	}
	return strings.Join(parts, " ")
}

func (d *doctor) binaries(ctx context.Context) {
	c := d.cfg.Cluster
	bin, err := FindBinaries(ctx, BinarySearch{BinDir: c.BinDir, LookupEnv: c.LookupEnv, Root: c.SearchRoot})
	if err != nil {
		d.add("postgres.binaries", Fail, err.Error(), InstallHint)
		return
	}
	d.bin = bin
	v := bin.Version
	d.serverVersion = &v
	if v.Major < MinServerMajor {
		d.add("postgres.binaries", Fail, fmt.Sprintf("PostgreSQL %s in %s is older than %d", v, bin.Dir, MinServerMajor),
			fmt.Sprintf("install PostgreSQL %d or newer (apt-get install -y postgresql) and set database.managed.bin_dir to its bin directory", MinServerMajor))
		return
	}
	d.add("postgres.binaries", Pass, fmt.Sprintf("PostgreSQL %s in %s", v, bin.Dir), "")
}

// clientTools checks pg_dump and pg_restore: present and not older than
// the server they will dump (pg_dump refuses newer servers).
func (d *doctor) clientTools(ctx context.Context, server *Version, serverName string) {
	lookup := d.cfg.Cluster.LookupEnv
	tools := map[string]string{}
	if d.bin != nil {
		tools["pg_dump"], tools["pg_restore"] = d.bin.PgDump, d.bin.PgRestore
	} else {
		tools["pg_dump"], tools["pg_restore"] = LookPath("pg_dump", lookup), LookPath("pg_restore", lookup)
	}
	for _, name := range []string{"pg_dump", "pg_restore"} {
		id := "postgres." + name
		path := tools[name]
		if path == "" {
			d.add(id, Fail, name+" not found; dg backup and dg drill need it",
				"apt-get install -y postgresql-client (or postgresql), or put "+name+" on PATH")
			continue
		}
		v, err := ToolVersion(ctx, path)
		if err != nil {
			d.add(id, Fail, fmt.Sprintf("%s does not run: %v", path, err), "reinstall the PostgreSQL client tools: apt-get install -y postgresql-client")
			continue
		}
		switch {
		case server == nil:
			d.add(id, Warn, fmt.Sprintf("%s %s at %s; the server version is unknown, so compatibility was not checked", name, v, path), "make the server reachable and run dg doctor again")
		case v.Major < server.Major:
			d.add(id, Fail, fmt.Sprintf("%s %s at %s is older than %s (%d); it cannot dump or restore that server", name, v, path, serverName, server.Major),
				fmt.Sprintf("install the PostgreSQL %d client tools (apt-get install -y postgresql-client-%d) and put them first on PATH", server.Major, server.Major))
		default:
			d.add(id, Pass, fmt.Sprintf("%s %s at %s (server %d)", name, v, path, server.Major), "")
		}
	}
}

// user reports who runs the cluster; as root that is run_as (default
// postgres), which must exist and not be root.
func (d *doctor) user() {
	u, err := resolveRunAs(d.cfg.Cluster.RunAs)
	if err != nil {
		d.add("user", Fail, err.Error(), "create the account (useradd --system postgres) or set database.managed.run_as to an existing unprivileged account")
		return
	}
	d.runUser = &u
	if u.switched {
		d.add("user", Pass, fmt.Sprintf("dg runs as root; the managed cluster runs as %s (uid %d)", u.name, u.uid), "")
		return
	}
	d.add("user", Pass, fmt.Sprintf("dg runs as %s (uid %d) and runs the managed cluster as itself", u.name, u.uid), "")
}

// userExternal: in external mode dg needs no privileges at all.
func (d *doctor) userExternal() {
	if os.Geteuid() == 0 {
		d.add("user", Warn, "dg runs as root, but external mode needs no privileges", "run dg as an unprivileged account (for example with systemd User=)")
		return
	}
	d.add("user", Pass, fmt.Sprintf("dg runs as uid %d", os.Geteuid()), "")
}

// dataDir inspects the data directory the way Start would, read-only.
func (d *doctor) dataDir() {
	const id = "data_dir"
	dir := d.cfg.Cluster.DataDir
	if dir == "" {
		d.add(id, Fail, "no data directory configured", "set database.managed.data_dir")
		return
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		anc, err := existingAncestor(dir)
		if err != nil {
			d.add(id, Fail, fmt.Sprintf("%s does not exist and cannot be created: %v", dir, err), "choose a data directory under a writable directory")
			return
		}
		if err := sysx.Writable(anc); err != nil {
			d.add(id, Fail, fmt.Sprintf("%s does not exist and %s is not writable: %v", dir, anc, err), "create the directory, or choose one dg can create")
			return
		}
		if d.runUser != nil {
			if err := checkReachable(dir, *d.runUser); err != nil {
				d.add(id, Fail, err.Error(), "make every parent directory enterable by "+d.runUser.name+" (chmod o+x), or choose another data directory")
				return
			}
		}
		d.add(id, Pass, fmt.Sprintf("%s does not exist yet; dg db start (or dg up) creates and initialises it", dir), "")
		return
	}
	if err != nil {
		d.add(id, Fail, err.Error(), "fix access to the data directory or choose another one")
		return
	}
	if !fi.IsDir() {
		d.add(id, Fail, dir+" is not a directory", "point database.managed.data_dir at a directory")
		return
	}
	if d.runUser != nil {
		if err := checkOwner(dir, fi, *d.runUser); err != nil {
			d.add(id, Fail, err.Error(), fmt.Sprintf("chown -R %s %s, or choose another data directory", d.runUser.name, dir))
			return
		}
		if err := checkReachable(dir, *d.runUser); err != nil {
			d.add(id, Fail, err.Error(), "make every parent directory enterable by "+d.runUser.name+" (chmod o+x), or choose another data directory")
			return
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "PG_VERSION"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		entries, _ := os.ReadDir(dir)
		if len(entries) > 0 {
			d.add(id, Fail, dir+" is not empty but holds no PostgreSQL cluster (no PG_VERSION)", "empty it or point database.managed.data_dir elsewhere")
			return
		}
		d.add(id, Pass, dir+" is empty; dg db start (or dg up) initialises it", "")
		return
	case err != nil:
		d.add(id, Fail, fmt.Sprintf("read %s/PG_VERSION: %v", dir, err), "run dg doctor as root or as the cluster's account")
		return
	}
	if d.bin != nil {
		if err := checkDataVersion(dir, strings.TrimSpace(string(raw)), d.bin); err != nil {
			fix := "set database.managed.bin_dir to binaries of the data directory's major version"
			if errors.Is(err, ErrOlderDataDir) {
				fix += ", or upgrade it with pg_upgrade"
			}
			d.add(id, Fail, err.Error(), fix)
			return
		}
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		d.add(id, Warn, fmt.Sprintf("%s has mode %#o; PostgreSQL wants 0700 (dg tightens it on start)", dir, perm), "chmod 700 "+dir)
		return
	}
	d.add(id, Pass, fmt.Sprintf("%s holds a PostgreSQL %s cluster, mode %#o", dir, strings.TrimSpace(string(raw)), fi.Mode().Perm()), "")
}

// postgresPort: the managed port must be free, unless our own cluster
// holds it.
func (d *doctor) postgresPort(ctx context.Context) {
	c := d.cfg.Cluster
	const id = "port.postgres"
	if c.Port <= 0 {
		d.add(id, Fail, "no managed port configured", "set database.managed.port")
		return
	}
	if c.DataDir != "" {
		dir, _ := filepath.Abs(c.DataDir)
		if pf, err := readPidFile(dir); err == nil && processAlive(pf.pid) {
			if pf.port == c.Port {
				d.add(id, Pass, fmt.Sprintf("port %d is served by this node's managed cluster (pid %d)", c.Port, pf.pid), "")
			} else {
				d.add(id, Warn, fmt.Sprintf("the managed cluster runs on port %d, not the configured %d", pf.port, c.Port), "restart it to apply the manifest: dg db stop && dg db start")
			}
			d.managedRunning(ctx, dir, pf)
			return
		}
	}
	host := c.ListenAddress
	if host == "" {
		host = "127.0.0.1"
	}
	d.portFree(id, net.JoinHostPort(host, strconv.Itoa(c.Port)), "set database.managed.port to a free port, or stop the process holding it")
}

// managedRunning checks that dg can log in to its running cluster with the
// stored superuser password.
func (d *doctor) managedRunning(ctx context.Context, dataDir string, pf pidFile) {
	const id = "postgres.managed"
	pwFile := d.cfg.Cluster.PasswordFile
	if pwFile == "" {
		pwFile = dataDir + ".password"
	}
	pw, err := readPassword(pwFile)
	if err != nil {
		d.add(id, Fail, fmt.Sprintf("the cluster runs (pid %d) but its superuser password cannot be read: %v", pf.pid, err), "restore "+pwFile+" (mode 0600), or stop the cluster and move the data directory aside so dg initialises a new one")
		return
	}
	socketDir := pf.socketDir
	if socketDir == "" {
		socketDir = dataDir
	}
	cctx, cancel := context.WithTimeout(ctx, d.cfg.ConnectTimeout)
	defer cancel()
	conn, err := pgx.Connect(cctx, socketURL(socketDir, pf.port, pw, "postgres"))
	if err != nil {
		d.add(id, Fail, fmt.Sprintf("the cluster runs (pid %d) but dg cannot connect: %v", pf.pid, err), "see the server log "+filepath.Join(dataDir, "postgresql.log")+"; check "+pwFile+" holds the password of user "+SuperUser)
		return
	}
	defer conn.Close(context.Background())
	var version string
	if err := conn.QueryRow(cctx, "SELECT current_setting('server_version')").Scan(&version); err != nil {
		d.add(id, Fail, fmt.Sprintf("connected to the cluster but could not query it: %v", err), "see the server log "+filepath.Join(dataDir, "postgresql.log"))
		return
	}
	d.add(id, Pass, fmt.Sprintf("the managed cluster runs (pid %d, PostgreSQL %s) and accepts dg's login", pf.pid, version), "")
}

func (d *doctor) serverPort() {
	if d.cfg.ServerListen == "" {
		return
	}
	d.portFree("port.server", d.cfg.ServerListen, "stop the process holding it (is dg up already running?) or change server.listen")
}

func (d *doctor) portFree(id, addr, fix string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		d.add(id, Fail, fmt.Sprintf("%s is in use: %v", addr, err), fix)
		return
	}
	_ = l.Close()
	d.add(id, Pass, addr+" is free", "")
}

// disk checks free space on the file system that holds (or will hold) dir.
func (d *doctor) disk(id, what, dir string) {
	anc, err := existingAncestor(dir)
	if err != nil {
		d.add(id, Fail, fmt.Sprintf("%s %s: %v", what, dir, err), "choose a directory on an existing file system")
		return
	}
	free, total, err := sysx.DiskSpace(anc)
	if err != nil {
		d.add(id, Fail, fmt.Sprintf("statfs %s: %v", anc, err), "check the file system holding "+dir)
		return
	}
	msg := fmt.Sprintf("%s free of %s on the file system of %s %s", humanBytes(free), humanBytes(total), what, dir)
	switch {
	case free < d.cfg.DiskFail:
		d.add(id, Fail, msg+fmt.Sprintf(" (below %s)", humanBytes(d.cfg.DiskFail)), "free space on that file system or move the "+what+" to a larger one")
	case free < d.cfg.DiskWarn:
		d.add(id, Warn, msg+fmt.Sprintf(" (below %s)", humanBytes(d.cfg.DiskWarn)), "free space on that file system or move the "+what+" to a larger one")
	default:
		d.add(id, Pass, msg, "")
	}
}

// accountsFile: the file holds bearer tokens, so only its owner may read it.
func (d *doctor) accountsFile() {
	const id = "accounts.file"
	path := d.cfg.AccountsFile
	if path == "" {
		d.add(id, Pass, "no accounts file configured (accounts.file)", "")
		return
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		d.add(id, Warn, path+" does not exist yet", "create it with dg accounts bootstrap before starting dg")
		return
	}
	if err != nil {
		d.add(id, Fail, err.Error(), "make "+path+" readable by the account running dg")
		return
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		var who []string
		if perm&0o070 != 0 {
			who = append(who, "its group")
		}
		if perm&0o007 != 0 {
			who = append(who, "every user")
		}
		d.add(id, Fail, fmt.Sprintf("%s holds tokens but has mode %#o: open to %s", path, perm, strings.Join(who, " and ")), "chmod 600 "+path)
		return
	}
	d.add(id, Pass, fmt.Sprintf("%s has mode %#o", path, fi.Mode().Perm()), "")
}

// reachable connects to the external server and records its version.
func (d *doctor) reachable(ctx context.Context) {
	const id = "postgres.reachable"
	if d.cfg.ExternalURL == "" {
		d.add(id, Fail, "external mode without database.url", "set database.url (or DATABASE_URL)")
		return
	}
	cctx, cancel := context.WithTimeout(ctx, d.cfg.ConnectTimeout)
	defer cancel()
	conn, err := pgx.Connect(cctx, d.cfg.ExternalURL)
	if err != nil {
		d.add(id, Fail, fmt.Sprintf("cannot connect to database.url: %v", err), "start the server or fix database.url (host, port, user, password, database)")
		return
	}
	defer conn.Close(context.Background())
	var num int
	if err := conn.QueryRow(cctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		d.add(id, Fail, fmt.Sprintf("connected but could not query: %v", err), "check the user's privileges on that database")
		return
	}
	v := Version{Major: num / 10000, Minor: num % 10000}
	d.serverVersion = &v
	cfg := conn.Config()
	where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	if v.Major < MinServerMajor {
		d.add(id, Fail, fmt.Sprintf("PostgreSQL %s at %s is older than %d", v, where, MinServerMajor), fmt.Sprintf("upgrade the server to PostgreSQL %d or newer", MinServerMajor))
		return
	}
	d.add(id, Pass, fmt.Sprintf("PostgreSQL %s at %s answers", v, where), "")
}

// existingAncestor returns dir or its nearest existing parent directory.
func existingAncestor(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return "", fmt.Errorf("%s is not a directory", p)
			}
			return p, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if p == filepath.Dir(p) {
			return "", err
		}
	}
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
