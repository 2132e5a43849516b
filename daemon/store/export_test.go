package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"
)

// Test-only knobs and accessors for the external test package. The raw
// accessors take either backend, so the contract suite corrupts both alike.

// WithBoltBatch routes writes through bbolt's DB.Batch (for comparison).
func WithBoltBatch(o Options) Options { o.boltBatch = true; return o }

// WithNoSync disables fsync (bulk loading only).
func WithNoSync(o Options) Options { o.noSync = true; return o }

// BulkLoad writes records directly, chunk by chunk, bypassing the per-write
// transaction; benchmarks use it to build large stores quickly.
func BulkLoad(s Store, recs []Record) error {
	for i := range recs {
		if err := recs[i].complete(); err != nil {
			return err
		}
	}
	if p, ok := s.(*Postgres); ok {
		rows := make([][]any, len(recs))
		for i := range recs {
			raw, err := encode(&recs[i])
			if err != nil {
				return err
			}
			rows[i] = []any{recs[i].KeyID, recs[i].Owner, string(recs[i].State), raw}
		}
		_, err := p.pool.CopyFrom(context.Background(), pgx.Identifier{"quorumd_keys"},
			[]string{"key_id", "owner", "state", "record"}, pgx.CopyFromRows(rows))
		return err
	}
	b := s.(*Bolt)
	const chunk = 20000
	for len(recs) > 0 {
		n := min(chunk, len(recs))
		err := b.db.Update(func(tx *bolt.Tx) error {
			for i := range recs[:n] {
				if err := put(tx, &recs[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// RawValue returns the stored bytes of a record, deleted or not.
func RawValue(s Store, keyID string) (v []byte, err error) {
	if p, ok := s.(*Postgres); ok {
		err = p.pool.QueryRow(context.Background(), `SELECT record FROM quorumd_keys WHERE key_id = $1`, keyID).Scan(&v)
		return v, err
	}
	err = s.(*Bolt).db.View(func(tx *bolt.Tx) error {
		got := tx.Bucket(bucketKeys).Get([]byte(keyID))
		if got == nil {
			return fmt.Errorf("no raw value for %q", keyID)
		}
		v = append([]byte(nil), got...)
		return nil
	})
	return v, err
}

// PutRaw overwrites a record's stored bytes (to simulate corruption).
func PutRaw(s Store, keyID string, v []byte) error {
	if p, ok := s.(*Postgres); ok {
		_, err := p.pool.Exec(context.Background(), `UPDATE quorumd_keys SET record = $2 WHERE key_id = $1`, keyID, v)
		return err
	}
	return s.(*Bolt).db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).Put([]byte(keyID), v)
	})
}

// DeleteOwnerIndex detaches a key from its owner's index (to simulate
// corruption): the bbolt index entry, or PostgreSQL's owner column.
func DeleteOwnerIndex(s Store, owner, keyID string) error {
	if p, ok := s.(*Postgres); ok {
		_, err := p.pool.Exec(context.Background(), `UPDATE quorumd_keys SET owner = owner || '-lost' WHERE key_id = $1 AND owner = $2`, keyID, owner)
		return err
	}
	return s.(*Bolt).db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOwners).Delete(ownerKey(owner, keyID))
	})
}

// DeleteUnscrubbed commits Delete's transaction (tombstone and owner-index
// removal, in one transaction) but skips the scrub that follows it: the
// state a crash between the two leaves. The pages it frees stay pending for
// its own transaction, so bbolt cannot reuse them before the store is
// closed, and they sit unscrubbed in the file until the next Open.
func DeleteUnscrubbed(s *Bolt, owner, keyID string) error {
	now := s.now()
	return s.modifyOwned(context.Background(), owner, keyID, func(r *Record) (bool, error) { *r = tombstone(*r, now); return true, nil })
}

// DecodeRecord parses raw as a read does; cached says whether through the
// decode cache (for comparing the two).
func DecodeRecord(keyID string, raw []byte, cached bool) (Record, error) {
	if cached {
		return decode([]byte(keyID), raw)
	}
	return decodeRecord([]byte(keyID), raw)
}

// EncodeRecord is the stored form of r.
func EncodeRecord(r Record) ([]byte, error) { return encode(&r) }
