package pgtest

import (
	"context"
	"strings"
	"testing"
)

// With no URL, no binaries (empty PATH, empty install root) and no Docker
// daemon, pgtest must fail and name all three ways to give it a server.
func TestAcquireWithNothingNamesAllThreeWays(t *testing.T) {
	noPath := func(k string) (string, bool) { return "", k == "PATH" }
	srv, err := acquire(context.Background(), noPath, t.TempDir())
	if srv != nil {
		// A Docker daemon answered: that is the third way working.
		if srv.teardown != nil {
			_ = srv.teardown(context.Background())
		}
		srv.pool.Close()
		t.Log("a Docker daemon answered; the fallback container worked")
		return
	}
	for _, want := range []string{EnvURL, "apt-get install -y postgresql", "Docker daemon"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error does not name %q:\n%v", want, err)
		}
	}
}
