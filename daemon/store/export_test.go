package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Test-only knobs and accessors for the external test package.

// WithBoltBatch routes writes through bbolt's DB.Batch (for comparison).
func WithBoltBatch(o Options) Options { o.boltBatch = true; return o }

// WithNoSync disables fsync (bulk loading only).
func WithNoSync(o Options) Options { o.noSync = true; return o }

// BulkLoad writes records directly, chunk by chunk, bypassing the per-write
// transaction; benchmarks use it to build large stores quickly.
func BulkLoad(s *Bolt, recs []Record) error {
	const chunk = 20000
	for len(recs) > 0 {
		n := min(chunk, len(recs))
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i := range recs[:n] {
				if err := recs[i].complete(); err != nil {
					return err
				}
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
func RawValue(s *Bolt, keyID string) (v []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
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
func PutRaw(s *Bolt, keyID string, v []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).Put([]byte(keyID), v)
	})
}

// DeleteOwnerIndex removes one owner-index entry (to simulate corruption).
func DeleteOwnerIndex(s *Bolt, owner, keyID string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOwners).Delete(ownerKey(owner, keyID))
	})
}
