package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/decisiongraph/dg/internal/sysx"
	"github.com/decisiongraph/dg/pkg/ops"
)

// dirPrefix names the temp directories of throwaway clusters; ownerFile in
// each holds the pid of the test binary that made it.
const (
	dirPrefix = "dg-pgtest-"
	ownerFile = "owner.pid"
)

// startLocal runs a throwaway cluster through pkg/ops in a temp directory.
func startLocal(ctx context.Context, env func(string) (string, bool), searchRoot string) (*server, error) {
	base := clusterBase()
	reapStale(base)
	dir, err := os.MkdirTemp(base, dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	fail := func(err error) (*server, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// The cluster may run as postgres (tests as root): it must be able to
	// enter the directory. The data directory itself stays 0700.
	if err := os.Chmod(dir, 0o755); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fail(err)
	}
	cluster, err := ops.NewCluster(ctx, ops.ClusterConfig{
		DataDir:   filepath.Join(dir, "data"),
		SocketDir: filepath.Join(dir, "sock"),
		// TCP is off, so the port only names the socket file and cannot clash.
		Port:          5432,
		NoTCP:         true,
		DisableFsync:  true,
		DieWithParent: true,
		LookupEnv:     env,
		SearchRoot:    searchRoot,
	})
	if err != nil {
		return fail(err)
	}
	if _, err := cluster.Start(ctx); err != nil {
		_ = cluster.Stop(context.Background())
		return fail(err)
	}
	admin, err := url.Parse(cluster.DatabaseURL("postgres"))
	if err != nil {
		_ = cluster.Stop(context.Background())
		return fail(err)
	}
	pool, err := openPool(ctx, admin.String(), 4)
	if err != nil {
		_ = cluster.Stop(context.Background())
		return fail(fmt.Errorf("connect to throwaway cluster in %s: %w", dir, err))
	}
	return &server{
		admin:    admin,
		pool:     pool,
		origin:   "throwaway cluster in " + dir,
		template: TemplateName,
		teardown: func(ctx context.Context) error {
			stopErr := cluster.Stop(ctx)
			if stopErr != nil {
				// Make sure nothing survives us, then clean up regardless.
				killCluster(filepath.Join(dir, "data"))
			}
			return errors.Join(stopErr, os.RemoveAll(dir))
		},
	}, nil
}

// clusterBase is where cluster directories go: the temp dir, unless its
// path is so long that the socket path would pass the 107-byte limit.
func clusterBase() string {
	base := os.TempDir()
	if len(base)+len("/"+dirPrefix+"0123456789/sock/.s.PGSQL.5432") > 107 {
		return "/tmp"
	}
	return base
}

// reapStale removes throwaway clusters left by test binaries that died
// without running Main's teardown (a panic, a timeout, a kill -9). Their
// postmasters are already gone (they die with their parent); this stops any
// that survived and deletes the files.
func reapStale(tmp string) (reaped []string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, dirPrefix+"*"))
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			// Being created right now, or not ours: leave it.
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || pidAlive(pid) {
			continue
		}
		killCluster(filepath.Join(dir, "data"))
		if os.RemoveAll(dir) == nil {
			reaped = append(reaped, dir)
		}
	}
	return reaped
}

// killCluster sends an immediate-shutdown signal to a data directory's
// postmaster, if one still runs, and waits briefly for it to go.
func killCluster(dataDir string) {
	raw, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || !pidAlive(pid) {
		return
	}
	// A pid file left by a crash may name a pid since reused by another
	// program: signal only a postgres.
	if comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm")); err == nil && !strings.HasPrefix(string(comm), "postgres") {
		return
	}
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Signal(syscall.SIGQUIT)
	}
	for i := 0; i < 100 && pidAlive(pid); i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	return sysx.ProcessAlive(pid)
}
