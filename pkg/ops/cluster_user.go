package ops

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/decisiongraph/dg/internal/sysx"
)

// runUser is the account the cluster's processes run as.
type runUser struct {
	name     string
	uid, gid uint32
	groups   []uint32
	// switched: dg runs as root and drops to this account for every
	// PostgreSQL program (initdb and pg_ctl refuse to run as root).
	switched bool
}

// resolveRunAs picks the cluster account: runAs (default postgres) when dg
// is root, else the current user whatever runAs says.
func resolveRunAs(runAs string) (runUser, error) {
	if os.Geteuid() == 0 {
		name := runAs
		if name == "" {
			name = DefaultRunAs
		}
		u, err := user.Lookup(name)
		if err != nil {
			return runUser{}, fmt.Errorf("%w: dg runs as root, so the cluster must run as an unprivileged account, but %q does not exist: create it (useradd --system %s, or apt-get install -y postgresql which creates postgres) or set database.managed.run_as", ErrRunAs, name, name)
		}
		ru, err := toRunUser(u)
		if err != nil {
			return runUser{}, err
		}
		if ru.uid == 0 {
			return runUser{}, fmt.Errorf("%w: run_as %q is root, and PostgreSQL refuses to run as root: name an unprivileged account", ErrRunAs, name)
		}
		ru.switched = true
		return ru, nil
	}
	u, err := user.Current()
	if err != nil {
		return runUser{}, fmt.Errorf("%w: look up the current user: %v", ErrRunAs, err)
	}
	// run_as applies only to root (the manifest defaults it to postgres):
	// an unprivileged dg cannot switch users and runs its cluster itself.
	return toRunUser(u)
}

func toRunUser(u *user.User) (runUser, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return runUser{}, fmt.Errorf("%w: uid %q of %s: %v", ErrRunAs, u.Uid, u.Username, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return runUser{}, fmt.Errorf("%w: gid %q of %s: %v", ErrRunAs, u.Gid, u.Username, err)
	}
	ru := runUser{name: u.Username, uid: uint32(uid), gid: uint32(gid), groups: []uint32{}}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				ru.groups = append(ru.groups, uint32(g))
			}
		}
	}
	return ru, nil
}

// chown hands path to the cluster account (a no-op when dg is that account).
func (u runUser) chown(path string) error {
	if !u.switched {
		return nil
	}
	if err := os.Chown(path, int(u.uid), int(u.gid)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, u.name, err)
	}
	return nil
}

// canTraverse reports whether the account may enter a directory.
func (u runUser) canTraverse(fi os.FileInfo) bool {
	uid, gid, ok := sysx.Owner(fi)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	if uid == u.uid {
		return perm&0o100 != 0
	}
	if gid == u.gid {
		return perm&0o010 != 0
	}
	for _, g := range u.groups {
		if gid == g {
			return perm&0o010 != 0
		}
	}
	return perm&0o001 != 0
}

// userName renders a uid as "name (uid N)" when the name is known.
func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return fmt.Sprintf("%s (uid %s)", u.Username, id)
	}
	return "uid " + id
}

// pidFile is what postmaster.pid tells: pid, data dir, start time, port,
// socket directory, listen address, shared memory key, status.
type pidFile struct {
	pid       int
	port      int
	socketDir string
	status    string
}

func readPidFile(dataDir string) (pidFile, error) {
	path := filepath.Join(dataDir, "postmaster.pid")
	f, err := os.Open(path)
	if err != nil {
		return pidFile{}, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, strings.TrimSpace(sc.Text()))
	}
	if err := sc.Err(); err != nil {
		return pidFile{}, fmt.Errorf("read %s: %w", path, err)
	}
	var pf pidFile
	if len(lines) == 0 {
		// A server writing its pid file right now; treat as not running.
		return pf, nil
	}
	pf.pid, _ = strconv.Atoi(lines[0])
	if len(lines) > 3 {
		pf.port, _ = strconv.Atoi(lines[3])
	}
	if len(lines) > 4 {
		pf.socketDir = lines[4]
	}
	if len(lines) > 7 {
		pf.status = lines[7]
	}
	return pf, nil
}

// processAlive reports whether pid is a live postgres process. A pid file
// left by a crash may name a pid reused by something else, so the command
// name is checked where /proc allows it.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if !sysx.ProcessAlive(pid) {
		return false
	}
	comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil {
		return true
	}
	c := strings.TrimSpace(string(comm))
	return strings.HasPrefix(c, "postgres") || strings.HasPrefix(c, "postmaster")
}
