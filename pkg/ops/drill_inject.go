package ops

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Faults a drill can inject to prove it catches them. File faults damage
// a copy of the dump; data faults damage the restored scratch copy. The
// backup itself is never modified.
const (
	// FaultFlipByte inverts one byte in the middle of the dump copy
	// (caught by the checksum check).
	FaultFlipByte = "flip-byte"
	// FaultTruncate cuts the dump copy in half (checksum).
	FaultTruncate = "truncate"
	// FaultTamperEvent rewrites the payload of one restored event (chain).
	FaultTamperEvent = "tamper-event"
	// FaultDropEvent deletes one restored event from the middle of the
	// log (sequences).
	FaultDropEvent = "drop-event"
	// FaultStaleProjection changes one restored projection row
	// (projection_digests).
	FaultStaleProjection = "stale-projection"
)

// Faults lists the injectable faults.
func Faults() []string {
	return []string{FaultFlipByte, FaultTruncate, FaultTamperEvent, FaultDropEvent, FaultStaleProjection}
}

// FaultCheck names the check each fault must make fail.
func FaultCheck(fault string) string {
	switch fault {
	case FaultFlipByte, FaultTruncate:
		return CheckChecksum
	case FaultTamperEvent:
		return CheckChain
	case FaultDropEvent:
		return CheckSequences
	case FaultStaleProjection:
		return CheckDigests
	}
	return ""
}

func validFault(f string) bool  { return slices.Contains(Faults(), f) }
func isFileFault(f string) bool { return f == FaultFlipByte || f == FaultTruncate }
func isDataFault(f string) bool {
	return f == FaultTamperEvent || f == FaultDropEvent || f == FaultStaleProjection
}

// injectFileFault copies the dump into dir and damages the copy.
func injectFileFault(fault, src, dir string) (string, error) {
	dst := filepath.Join(dir, filepath.Base(src))
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("open the dump to copy it: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("create the faulty copy: %w", err)
	}
	defer out.Close()
	n, err := io.Copy(out, in)
	if err != nil {
		return "", fmt.Errorf("copy the dump: %w", err)
	}
	if n == 0 {
		return "", fmt.Errorf("the dump %s is empty: nothing to damage", src)
	}
	switch fault {
	case FaultFlipByte:
		b := make([]byte, 1)
		if _, err := out.ReadAt(b, n/2); err != nil {
			return "", err
		}
		b[0] ^= 0xff
		if _, err := out.WriteAt(b, n/2); err != nil {
			return "", err
		}
	case FaultTruncate:
		if err := out.Truncate(n / 2); err != nil {
			return "", err
		}
	}
	return dst, out.Close()
}

// injectDataFault damages the restored scratch database and says how.
func injectDataFault(ctx context.Context, pool *pgxpool.Pool, fault string) (string, error) {
	var what string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		switch fault {
		case FaultTamperEvent, FaultDropEvent:
			var seq int64
			if err := tx.QueryRow(ctx, `SELECT COALESCE(max(log_seq), 0) / 2 + 1 FROM dg_event_log`).Scan(&seq); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `ALTER TABLE dg_event_log DISABLE TRIGGER USER`); err != nil {
				return err
			}
			var tag string
			if fault == FaultTamperEvent {
				tag = "UPDATE dg_event_log SET payload = json_build_object('tampered_by', 'dg drill') WHERE log_seq = $1"
				what = fmt.Sprintf("rewrote the payload of log_seq %d", seq)
			} else {
				tag = "DELETE FROM dg_event_log WHERE log_seq = $1"
				what = fmt.Sprintf("deleted log_seq %d", seq)
			}
			ct, err := tx.Exec(ctx, tag, seq)
			if err != nil {
				return err
			}
			if ct.RowsAffected() != 1 {
				return fmt.Errorf("the restored log has no event to damage (log_seq %d)", seq)
			}
			_, err = tx.Exec(ctx, `ALTER TABLE dg_event_log ENABLE TRIGGER USER`)
			return err
		case FaultStaleProjection:
			// By key, not ctid: the table is partitioned per tenant (0006), so a
			// ctid names one row in each partition.
			ct, err := tx.Exec(ctx, `UPDATE dg_trace_summary SET title = title || ' (stale)'
				WHERE (tenant_id, trace_id) = (SELECT tenant_id, trace_id FROM dg_trace_summary ORDER BY tenant_id, trace_id LIMIT 1)`)
			if err != nil {
				return err
			}
			if ct.RowsAffected() != 1 {
				return fmt.Errorf("the backup has no trace_summary rows to make stale: run the projections before the backup")
			}
			what = "changed the title of one dg_trace_summary row"
			return nil
		}
		return fmt.Errorf("unknown data fault %q", fault)
	})
	if err != nil {
		return "", fmt.Errorf("inject %s: %w", fault, err)
	}
	return what, nil
}
