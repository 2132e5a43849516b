package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"
)

// Named blobs: a few small values that every replica of a party must see
// the same (the HPKE import keys, daemon/importkey), each written by
// compare-and-swap on a version so that replicas deciding the same change
// at once make it exactly once. Values hold HSM-sealed secrets at most,
// never plaintext; an old value is scrubbed (bbolt) or vacuumed
// (PostgreSQL) after it is replaced, as a deleted key's record is.

// ErrConflict: SwapBlob's expected version is not the stored one: another
// writer (another replica) changed the blob first. Read it again.
var ErrConflict = errors.New("store: blob changed by another writer")

// Limits on named blobs.
const (
	MaxBlobNameLen = 128
	MaxBlobLen     = 256 << 10
)

// Blobs is the named-blob register.
type Blobs interface {
	// GetBlob returns a blob and its version; an absent blob is nil,
	// version 0, no error.
	GetBlob(ctx context.Context, name string) (value []byte, version int64, err error)
	// SwapBlob stores value if the blob's version is still version (0:
	// only if absent) and returns the new version; ErrConflict otherwise.
	// It is durable before it returns. A new version with an error means
	// the value was stored but the old one's bytes were not reclaimed.
	SwapBlob(ctx context.Context, name string, version int64, value []byte) (int64, error)
}

func checkBlob(name string, version int64, value []byte) error {
	if name == "" || len(name) > MaxBlobNameLen {
		return fmt.Errorf("%w: blob name must be 1..%d bytes", ErrInvalid, MaxBlobNameLen)
	}
	if version < 0 {
		return fmt.Errorf("%w: negative blob version", ErrInvalid)
	}
	return checkBytes("blob "+name, value, MaxBlobLen)
}

// bucketBlobs holds name → uint64 big-endian version || value.
var bucketBlobs = []byte("blobs")

// GetBlob implements Blobs.
func (s *Bolt) GetBlob(ctx context.Context, name string) (value []byte, version int64, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBlobs).Get([]byte(name))
		if v == nil {
			return nil
		}
		if len(v) < 9 {
			return fmt.Errorf("%w: blob %q of %d bytes", ErrCorrupt, name, len(v))
		}
		version = int64(binary.BigEndian.Uint64(v))
		value = append([]byte(nil), v[8:]...)
		return nil
	})
	return value, version, err
}

// SwapBlob implements Blobs; the replaced value's freed page is scrubbed
// before it returns.
func (s *Bolt) SwapBlob(ctx context.Context, name string, version int64, value []byte) (int64, error) {
	if err := checkBlob(name, version, value); err != nil {
		return 0, err
	}
	var next int64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		var have int64
		if v := b.Get([]byte(name)); len(v) >= 8 {
			have = int64(binary.BigEndian.Uint64(v))
		}
		if have != version {
			return fmt.Errorf("%w: %q is at version %d, not %d", ErrConflict, name, have, version)
		}
		next = version + 1
		v := append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), uint64(next)), value...)
		if err := b.Put([]byte(name), v); err != nil {
			return errAbort{err}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if _, err := s.scrub(); err != nil {
		return next, err
	}
	return next, nil
}

// GetBlob implements Blobs.
func (s *Postgres) GetBlob(ctx context.Context, name string) ([]byte, int64, error) {
	if err := s.check(ctx); err != nil {
		return nil, 0, err
	}
	var value []byte
	var version int64
	err := s.pool.QueryRow(ctx, `SELECT value, version FROM quorumd_blobs WHERE name = $1`, name).Scan(&value, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, classify("reading a blob", err)
	}
	return value, version, nil
}

// SwapBlob implements Blobs: one conditional INSERT or UPDATE, then the
// replaced row version is vacuumed.
func (s *Postgres) SwapBlob(ctx context.Context, name string, version int64, value []byte) (int64, error) {
	if err := checkBlob(name, version, value); err != nil {
		return 0, err
	}
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	q := `UPDATE quorumd_blobs SET value = $3, version = version + 1, updated_at = now() WHERE name = $1 AND version = $2`
	if version == 0 {
		q = `INSERT INTO quorumd_blobs (name, version, value) SELECT $1, $2 + 1, $3 ON CONFLICT (name) DO NOTHING`
	}
	tag, err := s.pool.Exec(ctx, q, name, version, value)
	if err != nil {
		return 0, classify("writing a blob", err)
	}
	if tag.RowsAffected() == 0 {
		return 0, fmt.Errorf("%w: %q is no longer at version %d", ErrConflict, name, version)
	}
	if version > 0 {
		if _, err := s.pool.Exec(context.WithoutCancel(ctx), `VACUUM quorumd_blobs`); err != nil {
			return version + 1, classify("vacuuming the blob table", err)
		}
	}
	return version + 1, nil
}
