package projection

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/jackc/pgx/v5"
)

// DigestThroughPostgres is DigestOffline through a throwaway database: it
// creates a fresh database on the server of serverURL (which needs CREATEDB),
// migrates it, appends the files' envelopes in order through the store,
// catches every projection up, reads the digests from the tables and drops
// the database.
func DigestThroughPostgres(ctx context.Context, serverURL, tenant string, files []EventFile, opts event.Options) (res *OfflineResult, err error) {
	err = WithThrowawayDB(ctx, serverURL, "dg_digest_", opts, func(st *store.Store) error {
		res, err = digestInto(ctx, st, tenant, files)
		return err
	})
	return res, err
}

// WithThrowawayDB creates a fresh database (name prefix + random suffix) on
// the server of serverURL (which needs CREATEDB), migrates it, runs fn with
// a store on it and drops it, whatever fn returns.
func WithThrowawayDB(ctx context.Context, serverURL, prefix string, opts event.Options, fn func(*store.Store) error) (err error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return err
	}
	name := prefix + hex.EncodeToString(suffix[:])
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("connect to %s to create a throwaway database: %w", u.Host, err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create throwaway database (the user needs CREATEDB): %w", err)
	}
	defer func() {
		_, derr := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		if derr != nil && err == nil {
			err = fmt.Errorf("drop throwaway database %s: %w", name, derr)
		}
	}()
	du := *u
	du.Path = "/" + name
	st, err := openMigrated(ctx, du.String(), opts)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

func digestInto(ctx context.Context, st *store.Store, tenant string, files []EventFile) (*OfflineResult, error) {
	res := &OfflineResult{}
	for _, f := range files {
		for i := range f.Events {
			res.Submitted++
			ar, err := st.Append(ctx, tenant, &f.Events[i])
			if err != nil {
				if code, ok := event.CodeOf(err); ok && code != event.CodeStorage {
					return nil, &InputError{File: f.Name, Index: i, Err: err}
				}
				return nil, fmt.Errorf("append %s event %d: %w", f.Name, i, err)
			}
			if !ar.Replayed {
				res.Appended++
			}
		}
	}
	pg := NewPG(st, 0)
	for _, name := range Names() {
		c, err := pg.NewCatcher(tenant, name)
		if err != nil {
			return nil, err
		}
		r, err := c.CatchUp(ctx, 0)
		if err != nil {
			return nil, err
		}
		res.Head = r.LastLogSeq
	}
	d, err := pg.LiveDigests(ctx, tenant)
	if err != nil {
		return nil, err
	}
	res.Digests = d
	return res, nil
}

func openMigrated(ctx context.Context, dbURL string, opts event.Options) (*store.Store, error) {
	st, err := store.Open(ctx, dbURL, store.Options{SkipSchemaCheck: true, Strict: opts.Strict, MaxConns: 4})
	if err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx, st.Pool()); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate throwaway database: %w", err)
	}
	return st, nil
}
