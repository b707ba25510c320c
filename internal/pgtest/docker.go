package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
)

// dockerRepo:dockerTag is the image pgtest runs when neither a URL nor local
// binaries are available.
const (
	dockerRepo = "postgres"
	dockerTag  = "16"
)

// startDocker runs postgres:16 in a container when a Docker daemon answers.
// The container removes itself when stopped and expires after ten minutes,
// so a crashed test binary leaks nothing for long.
func startDocker(ctx context.Context) (*server, error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return nil, fmt.Errorf("no Docker client: %w", err)
	}
	if err := pool.Client.Ping(); err != nil {
		return nil, fmt.Errorf("no Docker daemon answers: %w", err)
	}
	password, err := randomSuffix()
	if err != nil {
		return nil, err
	}
	res, err := pool.RunWithOptions(&dockertest.RunOptions{
		Repository: dockerRepo,
		Tag:        dockerTag,
		Env:        []string{"POSTGRES_USER=dg", "POSTGRES_PASSWORD=" + password, "POSTGRES_DB=postgres", "POSTGRES_INITDB_ARGS=--locale=C --encoding=UTF8"},
		Cmd:        []string{"postgres", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"},
	}, func(hc *docker.HostConfig) {
		hc.AutoRemove = true
		hc.RestartPolicy = docker.RestartPolicy{Name: "no"}
	})
	if err != nil {
		return nil, fmt.Errorf("run %s:%s container: %w", dockerRepo, dockerTag, err)
	}
	_ = res.Expire(600)
	admin := &url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword("dg", password),
		Host:     res.GetHostPort("5432/tcp"),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	pool.MaxWait = 2 * time.Minute
	var srv *server
	err = pool.Retry(func() error {
		p, err := openPool(ctx, admin.String(), 4)
		if err != nil {
			return err
		}
		srv = &server{
			admin:    admin,
			pool:     p,
			origin:   "container " + res.Container.Name,
			template: TemplateName,
			teardown: func(context.Context) error { return pool.Purge(res) },
		}
		return nil
	})
	if err != nil {
		_ = pool.Purge(res)
		return nil, fmt.Errorf("postgres container did not accept connections: %w", err)
	}
	return srv, nil
}
