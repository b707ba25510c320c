package ops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/decisiongraph/dg/internal/sysx"
	"github.com/jackc/pgx/v5"
)

// Errors callers branch on (cmd/dg maps them to exit codes and hints).
var (
	// ErrBinariesMissing: initdb, pg_ctl or postgres could not be found.
	ErrBinariesMissing = errors.New("PostgreSQL server binaries not found")
	// ErrPortInUse: the cluster's TCP port is taken by another process.
	ErrPortInUse = errors.New("port already in use")
	// ErrForeignOwner: the data directory belongs to a user other than the
	// one the cluster runs as.
	ErrForeignOwner = errors.New("data directory owned by another user")
	// ErrNewerDataDir: the data directory was made by a newer major version
	// than the binaries found.
	ErrNewerDataDir = errors.New("data directory is from a newer PostgreSQL major version")
	// ErrOlderDataDir: the data directory was made by an older major version
	// and needs pg_upgrade.
	ErrOlderDataDir = errors.New("data directory is from an older PostgreSQL major version")
	// ErrRunAs: the configured run-as user cannot be used.
	ErrRunAs = errors.New("cannot run the cluster as the configured user")
	// ErrLocked: another run is starting or stopping the same cluster.
	ErrLocked = errors.New("another dg run is starting or stopping this cluster")
	// ErrDataDir: the data directory is unusable for another reason (not a
	// directory, not empty, unreachable for the cluster's user...).
	ErrDataDir = errors.New("data directory unusable")
)

// DefaultDatabase is the database dg uses in a managed cluster.
const DefaultDatabase = "dg"

// SuperUser is the database superuser dg creates in a managed cluster.
const SuperUser = "dg"

// DefaultRunAs is the account the cluster runs as when dg runs as root.
const DefaultRunAs = "postgres"

// ClusterConfig describes a managed cluster. Zero values mean the defaults
// noted on each field.
type ClusterConfig struct {
	// DataDir is the cluster's data directory (required; made absolute).
	DataDir string
	// Port is the server port (required). It names the unix socket too.
	Port int
	// BinDir, when set, is the only place searched for server binaries.
	BinDir string
	// RunAs is the account the cluster runs as when dg runs as root
	// (default "postgres"). When dg is not root it is ignored: the cluster
	// runs as the current user.
	RunAs string
	// Database is created after start when it does not exist (empty: none).
	Database string
	// ListenAddress is the TCP address the server listens on (default
	// 127.0.0.1). NoTCP turns TCP off altogether (unix socket only).
	ListenAddress string
	NoTCP         bool
	// DisableFsync trades durability for speed (test clusters only).
	DisableFsync bool
	// SocketDir holds the unix socket (default DataDir).
	SocketDir string
	// PasswordFile holds the generated superuser password, mode 0600
	// (default "<DataDir>.password", next to the data directory).
	PasswordFile string
	// DieWithParent runs postgres as a direct child that receives SIGQUIT
	// when this process dies, instead of daemonising it with pg_ctl. Test
	// clusters use it so a crashed test binary leaks no server.
	DieWithParent bool
	// StartTimeout bounds the wait for the server to accept connections
	// (default 60s).
	StartTimeout time.Duration
	// LookupEnv reads PATH for the binary search (nil: os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// SearchRoot overrides /usr/lib/postgresql for the binary search.
	SearchRoot string
	// Logger receives progress (nil: discarded).
	Logger *slog.Logger
}

// ClusterStatus is what `dg db status` reports.
type ClusterStatus struct {
	Running     bool   `json:"running"`
	Initialized bool   `json:"initialized"`
	PID         int    `json:"pid,omitempty"`
	Port        int    `json:"port"`
	DataDir     string `json:"data_dir"`
	SocketDir   string `json:"socket_dir"`
	// DataVersion is the major version in the data directory's PG_VERSION.
	DataVersion string `json:"data_version,omitempty"`
	// ServerVersion is the version of the binaries dg would run.
	ServerVersion string `json:"server_version"`
	BinDir        string `json:"bin_dir"`
	RunAs         string `json:"run_as"`
	LogFile       string `json:"log_file"`
	// PasswordFile holds the password of SuperUser (mode 0600).
	PasswordFile string `json:"password_file"`
	SuperUser    string `json:"superuser"`
}

// Cluster is a managed PostgreSQL cluster. It is safe to create several
// Cluster values for one data directory (one per command run); the data
// directory's postmaster.pid is the source of truth for "running".
type Cluster struct {
	cfg  ClusterConfig
	bin  *Binaries
	user runUser
	log  *slog.Logger

	password string

	// child is the postgres process when DieWithParent started it.
	child  *exec.Cmd
	exited chan struct{}
}

// NewCluster validates cfg, locates the binaries and resolves the account
// the cluster runs as. It starts nothing.
func NewCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: no data directory configured: set database.managed.data_dir", ErrDataDir)
	}
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("cluster port %d is out of range: set database.managed.port to 1-65535", cfg.Port)
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("resolve data directory %s: %w", cfg.DataDir, err)
	}
	cfg.DataDir = abs
	if cfg.SocketDir == "" {
		cfg.SocketDir = cfg.DataDir
	}
	if cfg.SocketDir, err = filepath.Abs(cfg.SocketDir); err != nil {
		return nil, fmt.Errorf("resolve socket directory: %w", err)
	}
	// sun_path holds 108 bytes including the terminating NUL.
	if sock := socketPath(cfg.SocketDir, cfg.Port); len(sock) > 107 {
		return nil, fmt.Errorf("%w: unix socket path %s is %d bytes, over the 107-byte limit: choose a shorter data directory path", ErrDataDir, sock, len(sock))
	}
	if cfg.PasswordFile == "" {
		cfg.PasswordFile = cfg.DataDir + ".password"
	}
	if cfg.ListenAddress == "" {
		cfg.ListenAddress = "127.0.0.1"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	bin, err := FindBinaries(ctx, BinarySearch{BinDir: cfg.BinDir, LookupEnv: cfg.LookupEnv, Root: cfg.SearchRoot})
	if err != nil {
		return nil, err
	}
	if bin.Version.Major < MinServerMajor {
		return nil, fmt.Errorf("PostgreSQL %s in %s is too old: dg needs %d or newer; %s", bin.Version, bin.Dir, MinServerMajor, InstallHint)
	}
	u, err := resolveRunAs(cfg.RunAs)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, bin: bin, user: u, log: logger}
	// Absent before the first initdb; Start reads it again afterwards.
	c.password, _ = readPassword(cfg.PasswordFile)
	return c, nil
}

// Binaries returns the binaries the cluster uses.
func (c *Cluster) Binaries() *Binaries { return c.bin }

// RunAs returns the account the cluster runs as.
func (c *Cluster) RunAs() string { return c.user.name }

// PasswordFile is where the generated superuser password is kept.
func (c *Cluster) PasswordFile() string { return c.cfg.PasswordFile }

// DataDir returns the absolute data directory.
func (c *Cluster) DataDir() string { return c.cfg.DataDir }

// LogFile is where the server writes its log.
func (c *Cluster) LogFile() string { return filepath.Join(c.cfg.DataDir, "postgresql.log") }

// URL is the superuser connection URL of the configured database, over the
// unix socket. It suits pgx and libpq tools (pg_dump, pg_restore, psql).
func (c *Cluster) URL() string { return c.DatabaseURL(c.cfg.Database) }

// DatabaseURL is like URL for another database name ("" means postgres).
func (c *Cluster) DatabaseURL(name string) string {
	return socketURL(c.cfg.SocketDir, c.cfg.Port, c.password, name)
}

// socketURL is the superuser URL of a database over a unix socket.
func socketURL(socketDir string, port int, password, name string) string {
	if name == "" {
		name = "postgres"
	}
	q := url.Values{}
	q.Set("host", socketDir)
	q.Set("port", strconv.Itoa(port))
	q.Set("sslmode", "disable")
	u := url.URL{Scheme: "postgres", User: url.UserPassword(SuperUser, password), Path: "/" + name, RawQuery: q.Encode()}
	if password == "" {
		u.User = url.User(SuperUser)
	}
	return u.String()
}

// Start initialises the data directory when needed, starts the server,
// waits until it accepts connections and creates the database. When the
// cluster is already running it only ensures the database and reports
// alreadyRunning.
func (c *Cluster) Start(ctx context.Context) (alreadyRunning bool, err error) {
	unlock, err := c.lock()
	if err != nil {
		return false, err
	}
	defer unlock()
	st, err := c.Status(ctx)
	if err != nil {
		return false, err
	}
	if st.Running {
		if st.Port != c.cfg.Port {
			return true, fmt.Errorf("cluster in %s already runs on port %d, not the configured %d: stop it (dg db stop) and start again", c.cfg.DataDir, st.Port, c.cfg.Port)
		}
		c.log.Info("managed postgres already running", "data_dir", c.cfg.DataDir, "pid", st.PID, "port", st.Port)
		return true, c.ensureDatabase(ctx)
	}
	initialized, err := c.prepareDataDir()
	if err != nil {
		return false, err
	}
	// Fail on a taken port before spending seconds in initdb.
	if err := c.checkPortFree(); err != nil {
		return false, err
	}
	if !initialized {
		if err := c.initdb(ctx); err != nil {
			return false, err
		}
	}
	if c.password, err = readPassword(c.cfg.PasswordFile); err != nil {
		return false, fmt.Errorf("%w: read the superuser password from %s: %v; restore that file or move the data directory aside and let dg initialise a new one", ErrDataDir, c.cfg.PasswordFile, err)
	}
	if err := c.writeConf(); err != nil {
		return false, err
	}
	if err := c.prepareSocketDir(); err != nil {
		return false, err
	}
	c.log.Info("starting managed postgres", "data_dir", c.cfg.DataDir, "port", c.cfg.Port, "run_as", c.user.name, "version", c.bin.Version.String())
	if c.cfg.DieWithParent {
		err = c.startChild(ctx)
	} else {
		err = c.startDaemon(ctx)
	}
	if err != nil {
		return false, err
	}
	return false, c.ensureDatabase(ctx)
}

// Stop shuts the server down with pg_ctl stop -m fast. Stopping a stopped
// cluster is not an error.
func (c *Cluster) Stop(ctx context.Context) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if !st.Running {
		return nil
	}
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	c.log.Info("stopping managed postgres", "data_dir", c.cfg.DataDir, "pid", st.PID)
	out, err := c.command(ctx, "pg_ctl", "stop", "-D", c.cfg.DataDir, "-m", "fast", "-w", "-t", "60", "-s").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop in %s: %w: %s", c.cfg.DataDir, err, strings.TrimSpace(string(out)))
	}
	if c.exited != nil {
		select {
		case <-c.exited:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Status reads the data directory to say whether the cluster runs.
func (c *Cluster) Status(ctx context.Context) (ClusterStatus, error) {
	st := ClusterStatus{
		Port:          c.cfg.Port,
		DataDir:       c.cfg.DataDir,
		SocketDir:     c.cfg.SocketDir,
		ServerVersion: c.bin.Version.String(),
		BinDir:        c.bin.Dir,
		RunAs:         c.user.name,
		LogFile:       c.LogFile(),
		PasswordFile:  c.cfg.PasswordFile,
		SuperUser:     SuperUser,
	}
	if v, err := os.ReadFile(filepath.Join(c.cfg.DataDir, "PG_VERSION")); err == nil {
		st.Initialized = true
		st.DataVersion = strings.TrimSpace(string(v))
	} else if !errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("read %s: %w", filepath.Join(c.cfg.DataDir, "PG_VERSION"), err)
	}
	pf, err := readPidFile(c.cfg.DataDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return st, nil
		}
		return st, err
	}
	if !processAlive(pf.pid) {
		return st, nil
	}
	st.Running = true
	st.PID = pf.pid
	if pf.port != 0 {
		st.Port = pf.port
	}
	if pf.socketDir != "" {
		st.SocketDir = pf.socketDir
	}
	return st, nil
}

// LockFile is held (flock) while a run starts or stops the cluster, so
// two runs never initdb or start one data directory at once.
func (c *Cluster) LockFile() string { return c.cfg.DataDir + ".lock" }

func (c *Cluster) lock() (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(c.cfg.DataDir), 0o755); err != nil {
		return nil, fmt.Errorf("%w: create parent of %s: %v", ErrDataDir, c.cfg.DataDir, err)
	}
	unlock, err = sysx.LockFile(c.LockFile())
	if errors.Is(err, sysx.ErrLocked) {
		return nil, fmt.Errorf("%w (%s is held): wait for it to finish and try again", ErrLocked, c.LockFile())
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", c.LockFile(), err)
	}
	return unlock, nil
}

// prepareDataDir creates the data directory when missing and checks an
// existing one: owner, mode, major version. It reports whether the
// directory already holds a cluster.
func (c *Cluster) prepareDataDir() (initialized bool, err error) {
	dir := c.cfg.DataDir
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return false, fmt.Errorf("%w: create parent of %s: %v", ErrDataDir, dir, err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			return false, fmt.Errorf("%w: create %s: %v", ErrDataDir, dir, err)
		}
		if err := c.user.chown(dir); err != nil {
			return false, err
		}
		return false, checkReachable(dir, c.user)
	case err != nil:
		return false, fmt.Errorf("%w: %v", ErrDataDir, err)
	case !fi.IsDir():
		return false, fmt.Errorf("%w: %s is not a directory: point database.managed.data_dir at a directory", ErrDataDir, dir)
	}
	if err := checkOwner(dir, fi, c.user); err != nil {
		return false, err
	}
	if err := checkReachable(dir, c.user); err != nil {
		return false, err
	}
	// PostgreSQL refuses data directories readable by others.
	if fi.Mode().Perm()&0o077 != 0 {
		c.log.Info("tightening data directory mode to 0700", "data_dir", dir, "was", fmt.Sprintf("%#o", fi.Mode().Perm()))
		if err := os.Chmod(dir, 0o700); err != nil {
			return false, fmt.Errorf("%w: chmod 0700 %s: %v", ErrDataDir, dir, err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "PG_VERSION"))
	if errors.Is(err, os.ErrNotExist) {
		entries, rerr := os.ReadDir(dir)
		if rerr != nil {
			return false, fmt.Errorf("%w: read %s: %v", ErrDataDir, dir, rerr)
		}
		if len(entries) > 0 {
			return false, fmt.Errorf("%w: %s is not empty but holds no PostgreSQL cluster (no PG_VERSION): empty it or point database.managed.data_dir elsewhere", ErrDataDir, dir)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: read PG_VERSION: %v", ErrDataDir, err)
	}
	return true, checkDataVersion(dir, strings.TrimSpace(string(raw)), c.bin)
}

// checkDataVersion compares a data directory's major version with the
// binaries'.
func checkDataVersion(dir, pgVersion string, bin *Binaries) error {
	major, err := strconv.Atoi(pgVersion)
	if err != nil {
		return fmt.Errorf("%w: %s/PG_VERSION holds %q, not a major version", ErrDataDir, dir, pgVersion)
	}
	switch {
	case major > bin.Version.Major:
		return fmt.Errorf("%w: %s was initialised by PostgreSQL %d but the binaries in %s are %s: install PostgreSQL %d (apt-get install -y postgresql-%d) and set database.managed.bin_dir to its bin directory", ErrNewerDataDir, dir, major, bin.Dir, bin.Version, major, major)
	case major < bin.Version.Major:
		return fmt.Errorf("%w: %s was initialised by PostgreSQL %d but the binaries in %s are %s: set database.managed.bin_dir to PostgreSQL %d binaries, or upgrade the directory with pg_upgrade", ErrOlderDataDir, dir, major, bin.Dir, bin.Version, major)
	}
	return nil
}

// checkOwner fails when dir belongs to someone other than the cluster user.
func checkOwner(dir string, fi os.FileInfo, u runUser) error {
	uid, _, ok := sysx.Owner(fi)
	if !ok {
		return nil
	}
	if uid == u.uid {
		return nil
	}
	return fmt.Errorf("%w: %s belongs to %s but the cluster runs as %s: chown -R %s %s (when that data is yours), or point database.managed.data_dir at another directory", ErrForeignOwner, dir, userName(uid), u.name, u.name, dir)
}

// checkReachable fails when the cluster's user cannot traverse the parents
// of dir (a 0700 home or temp directory owned by root, for example).
func checkReachable(dir string, u runUser) error {
	if !u.switched {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrDataDir, err)
		}
		if !u.canTraverse(fi) {
			return fmt.Errorf("%w: %s (mode %#o) cannot be traversed by %s, who runs the cluster: chmod o+x %s or choose a data directory outside it", ErrDataDir, p, fi.Mode().Perm(), u.name, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func (c *Cluster) prepareSocketDir() error {
	if c.cfg.SocketDir == c.cfg.DataDir {
		return nil
	}
	if _, err := os.Stat(c.cfg.SocketDir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(c.cfg.SocketDir, 0o700); err != nil {
			return fmt.Errorf("create socket directory: %w", err)
		}
		return c.user.chown(c.cfg.SocketDir)
	}
	return nil
}

func (c *Cluster) initdb(ctx context.Context) error {
	pw, err := newPassword()
	if err != nil {
		return err
	}
	// initdb reads the password from a file as the cluster user; the file
	// lives only for the duration of initdb.
	tmp, err := os.CreateTemp("", "dg-initdb-*")
	if err != nil {
		return fmt.Errorf("create initdb password file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(pw + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("write initdb password file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write initdb password file: %w", err)
	}
	if err := c.user.chown(tmp.Name()); err != nil {
		return err
	}
	args := []string{
		"-D", c.cfg.DataDir,
		"-U", SuperUser,
		"--pwfile=" + tmp.Name(),
		"-E", "UTF8",
		"--locale=C",
		"--auth-local=scram-sha-256",
		"--auth-host=scram-sha-256",
		"--no-instructions",
	}
	if c.cfg.DisableFsync {
		args = append(args, "--no-sync")
	}
	c.log.Info("initialising managed postgres", "data_dir", c.cfg.DataDir, "run_as", c.user.name)
	out, err := c.command(ctx, "initdb", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb %s: %w: %s", c.cfg.DataDir, err, lastLines(string(out), 10))
	}
	// Keep the password next to (not inside) the data directory, readable
	// only by the account running dg.
	if err := writeFileAtomic(c.cfg.PasswordFile, []byte(pw+"\n"), 0o600); err != nil {
		return fmt.Errorf("store superuser password: %w", err)
	}
	c.password = pw
	conf := filepath.Join(c.cfg.DataDir, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", conf, err)
	}
	_, werr := f.WriteString("\n# dg writes its settings (port, socket, listen address) here on every start.\ninclude_if_exists = '" + dgConfName + "'\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("append include to %s: %w", conf, werr)
	}
	return nil
}

const dgConfName = "dg.conf"

// writeConf writes the settings dg controls, so that a plain pg_ctl start
// by an operator behaves exactly like dg's.
func (c *Cluster) writeConf() error {
	listen := c.cfg.ListenAddress
	if c.cfg.NoTCP {
		listen = ""
	}
	var b strings.Builder
	b.WriteString("# Written by dg on every start: change the manifest, not this file.\n")
	fmt.Fprintf(&b, "port = %d\n", c.cfg.Port)
	fmt.Fprintf(&b, "unix_socket_directories = %s\n", confQuote(c.cfg.SocketDir))
	b.WriteString("unix_socket_permissions = 0700\n")
	fmt.Fprintf(&b, "listen_addresses = %s\n", confQuote(listen))
	if c.cfg.DisableFsync {
		b.WriteString("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
	} else {
		b.WriteString("fsync = on\n")
	}
	path := filepath.Join(c.cfg.DataDir, dgConfName)
	if err := writeFileAtomic(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return c.user.chown(path)
}

// checkPortFree fails with ErrPortInUse when something else holds the
// port. Without TCP only the socket file matters, which lives in our own
// directory.
func (c *Cluster) checkPortFree() error {
	if c.cfg.NoTCP {
		return nil
	}
	addr := net.JoinHostPort(c.cfg.ListenAddress, strconv.Itoa(c.cfg.Port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: %s is taken by another process: stop it (ss -ltnp 'sport = :%d' shows which) or set database.managed.port to a free port", ErrPortInUse, addr, c.cfg.Port)
	}
	_ = l.Close()
	return nil
}

func (c *Cluster) startDaemon(ctx context.Context) error {
	secs := strconv.Itoa(int(c.cfg.StartTimeout / time.Second))
	out, err := c.command(ctx, "pg_ctl", "start", "-D", c.cfg.DataDir, "-l", c.LogFile(), "-w", "-t", secs, "-s").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl start in %s: %w: %s\nserver log %s ends with:\n%s", c.cfg.DataDir, err, strings.TrimSpace(string(out)), c.LogFile(), tailFile(c.LogFile(), 15))
	}
	return c.waitReady(ctx, nil)
}

func (c *Cluster) startChild(ctx context.Context) error {
	logf, err := os.OpenFile(c.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	// Not CommandContext: the server must outlive the start request.
	cmd := c.command(context.Background(), "postgres", "-D", c.cfg.DataDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGQUIT is PostgreSQL's immediate shutdown: when the test binary
	// dies, the postmaster takes its backends down with it.
	if err := sysx.DieWithParent(cmd, syscall.SIGQUIT); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres as a child: %w", err)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	c.child, c.exited = cmd, exited
	if err := c.waitReady(ctx, exited); err != nil {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		return err
	}
	return nil
}

// waitReady polls until the server answers a query over the socket.
func (c *Cluster) waitReady(ctx context.Context, exited <-chan struct{}) error {
	deadline := time.Now().Add(c.cfg.StartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("postgres exited during start-up; server log %s ends with:\n%s", c.LogFile(), tailFile(c.LogFile(), 15))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(pctx, c.DatabaseURL("postgres"))
		if err == nil {
			err = conn.Ping(pctx)
			conn.Close(pctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("postgres in %s did not accept connections within %s: %v; see %s", c.cfg.DataDir, c.cfg.StartTimeout, lastErr, c.LogFile())
}

func (c *Cluster) ensureDatabase(ctx context.Context) error {
	if c.cfg.Database == "" {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, c.DatabaseURL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to managed postgres to create database %s: %w", c.cfg.Database, err)
	}
	defer conn.Close(cctx)
	var exists bool
	if err := conn.QueryRow(cctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", c.cfg.Database).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", c.cfg.Database, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{c.cfg.Database}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", c.cfg.Database, err)
	}
	c.log.Info("created database", "database", c.cfg.Database)
	return nil
}

// command prepares a PostgreSQL program run as the cluster user, with an
// environment free of PG* variables that would redirect it.
func (c *Cluster) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin.Path(prog), args...)
	// The cluster user may not be able to enter dg's working directory.
	cmd.Dir = "/"
	env := []string{"LC_ALL=C"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	if c.user.switched {
		// Only reachable as root on Unix (see resolveRunUser), where RunAs
		// cannot fail.
		_ = sysx.RunAs(cmd, c.user.uid, c.user.gid, c.user.groups)
	}
	return cmd
}

func socketPath(dir string, port int) string {
	return filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(port))
}

// confQuote quotes a postgresql.conf string value.
func confQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func newPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate superuser password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return pw, nil
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return lastLines(string(b), n)
}
