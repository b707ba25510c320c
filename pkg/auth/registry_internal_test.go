package auth

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func readerDoc(token string) string {
	return `{"service_accounts": [{"account_id": "reader-main", "roles": ["reader"], "permissions": [], "tenant_ids": ["default"], "tokens": ["` + token + `"]},
		{"account_id": "admin-main", "roles": ["admin"], "permissions": ["*"], "tenant_ids": "*", "tokens": ["admin-token"]}]}`
}

// A watch that reads an accounts file while it is being written (here:
// empty, the moment after os.WriteFile truncated it) fails that reload,
// and must read the file again once the write has landed, even when the
// write completes between the failed read and anything the watch does
// next. Before readFile kept the stat of the version it read, the watch
// took a fresh stat after the failure, recorded the completed file as the
// broken one, and never loaded it (TestWatchSurvivesMissingFile failed
// about once in thirty runs that way).
func TestWatchReloadsAFileCompletedDuringAFailedRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.json")
	if err := os.WriteFile(path, []byte(readerDoc("token-a")), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Load(Config{File: path, LookupEnv: func(string) (string, bool) { return "", false }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// The write in progress: the file is empty when the watch reads it,
	// and complete right after the read.
	var once sync.Once
	r.mu.Lock()
	r.readHook = func() {
		once.Do(func() {
			if err := os.WriteFile(path, []byte(readerDoc("token-b")), 0o600); err != nil {
				t.Error(err)
			}
		})
	}
	r.mu.Unlock()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Watch(ctx, 5*time.Millisecond, nil)
	deadline := time.Now().Add(10 * time.Second)
	for r.Current().Lookup("token-b") == nil {
		if time.Now().After(deadline) {
			r.mu.Lock()
			last := r.lastErr
			r.mu.Unlock()
			t.Fatalf("the completed file was never loaded (last reload error: %s)", last)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r.Current().Lookup("token-a") != nil {
		t.Fatal("the old token is still accepted after the reload")
	}
}
