package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DefaultFileName is the store's file inside the state directory.
const DefaultFileName = "keys.db"

// formatV1 identifies the on-disk layout; Open refuses any other.
const formatV1 = "quorumd-keys-v1"

var (
	bucketKeys   = []byte("keys")   // key_id → JSON record
	bucketOwners = []byte("owners") // uvarint(len(owner)) owner key_id → empty
	bucketMeta   = []byte("meta")   // "format" → formatV1
	metaFormat   = []byte("format")
)

// ErrLocked: another process holds the store file.
var ErrLocked = errors.New("store: file locked by another process")

// Options tune a Bolt store.
type Options struct {
	// SerialCommit gives every write its own transaction and fsync. By
	// default concurrent writes share one transaction and one fsync (group
	// commit); either way a call returns only after its write is durable.
	SerialCommit bool
	// MaxGroup bounds the writes per group transaction; 0 means 256.
	MaxGroup int
	// LockTimeout bounds the wait for the file lock; 0 means 2s.
	LockTimeout time.Duration

	// boltBatch routes writes through bbolt's own DB.Batch instead (tests
	// and benchmarks only, for comparison).
	boltBatch bool
	// noSync disables fsync (bulk loading in benchmarks only).
	noSync bool
}

// Bolt is a Store on a single bbolt file; every write is durable (fsynced)
// before it returns.
type Bolt struct {
	db   *bolt.DB
	opts Options
	now  func() time.Time

	// readers is held shared by every read transaction and exclusively by
	// scrub, which may only zero pages that no reader can reach.
	readers sync.RWMutex
	// scrubFile is a second handle on the file, for scrub's writes.
	scrubFile *os.File

	// mu guards closed and sending on writes: senders hold it shared.
	mu      sync.RWMutex
	closed  bool
	writes  chan writeReq
	writerD chan struct{}
}

var _ Store = (*Bolt)(nil)

// writeReq is one write waiting for the group-commit writer.
type writeReq struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// errAbort marks an error after which a transaction must not commit: the
// write functions below do all their checks before writing, so any other
// error leaves the transaction untouched and can be reported alone.
type errAbort struct{ err error }

func (e errAbort) Error() string { return e.err.Error() }
func (e errAbort) Unwrap() error { return e.err }

// OpenDir opens (creating if needed) DefaultFileName in stateDir.
func OpenDir(stateDir string, opts Options) (*Bolt, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: state directory: %w", err)
	}
	return Open(filepath.Join(stateDir, DefaultFileName), opts)
}

// Open opens (creating if needed) the store file at path, mode 0600.
func Open(path string, opts Options) (*Bolt, error) {
	if opts.MaxGroup <= 0 {
		opts.MaxGroup = 256
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 2 * time.Second
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout,
		// The map freelist stays fast on large files; not syncing it saves a
		// write per commit and is rebuilt by scanning on open.
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
		NoSync:         opts.noSync,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	if created {
		// Make the new file's directory entry durable too.
		if err := syncDir(filepath.Dir(path)); err != nil {
			db.Close()
			return nil, err
		}
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch f := meta.Get(metaFormat); {
		case f == nil:
			if err := meta.Put(metaFormat, []byte(formatV1)); err != nil {
				return err
			}
		case string(f) != formatV1:
			return fmt.Errorf("%w: file format %q, want %q", ErrCorrupt, f, formatV1)
		}
		for _, b := range [][]byte{bucketKeys, bucketOwners, bucketBlobs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: initializing %s: %w", path, err)
	}
	sf, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	s := &Bolt{db: db, opts: opts, scrubFile: sf, now: func() time.Time { return time.Now().UTC() }}
	// A crash between a delete and its scrub left freed pages unscrubbed.
	if _, err := s.scrub(); err != nil {
		sf.Close()
		db.Close()
		return nil, err
	}
	if opts.boltBatch {
		db.MaxBatchDelay = time.Millisecond
		db.MaxBatchSize = opts.MaxGroup
	}
	if !opts.SerialCommit && !opts.boltBatch {
		s.writes = make(chan writeReq, 4*opts.MaxGroup)
		s.writerD = make(chan struct{})
		go s.writer()
	}
	return s, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: syncing %s: %w", dir, err)
	}
	return nil
}

// Close waits for queued writes, then closes the file.
func (s *Bolt) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.writes != nil {
		close(s.writes)
	}
	s.mu.Unlock()
	if s.writerD != nil {
		<-s.writerD
	}
	s.scrubFile.Close()
	return s.db.Close()
}

// update runs fn in a durable write transaction, alone or grouped with other
// writers according to the options.
func (s *Bolt) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	var err error
	switch {
	case s.writes != nil:
		req := writeReq{fn: fn, done: make(chan error, 1)}
		s.writes <- req
		s.mu.RUnlock()
		err = <-req.done
	case s.opts.boltBatch:
		s.mu.RUnlock()
		err = s.db.Batch(fn)
	default:
		s.mu.RUnlock()
		err = s.db.Update(fn)
	}
	var ab errAbort
	if errors.As(err, &ab) {
		return fmt.Errorf("store: write failed: %w", ab.err)
	}
	return err
}

// writer is the group-commit loop: whatever queued up while the previous
// transaction was syncing goes into the next one, so there is no added delay
// for a lone writer and one fsync per group under load.
func (s *Bolt) writer() {
	defer close(s.writerD)
	batch := make([]writeReq, 0, s.opts.MaxGroup)
	results := make([]error, 0, s.opts.MaxGroup)
	for first := range s.writes {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < s.opts.MaxGroup {
			select {
			case r, ok := <-s.writes:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		results = results[:0]
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, r := range batch {
				e := r.fn(tx)
				var ab errAbort
				if errors.As(e, &ab) {
					return e
				}
				results = append(results, e)
			}
			return nil
		})
		for i, r := range batch {
			if err != nil {
				r.done <- err
			} else {
				r.done <- results[i]
			}
		}
	}
}

// view runs fn in a read transaction.
func (s *Bolt) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	s.readers.RLock()
	defer s.readers.RUnlock()
	return s.db.View(fn)
}

// ownerKey is the owners-bucket key: the length prefix keeps owner "ab" +
// key "c" apart from owner "a" + key "bc".
func ownerKey(owner, keyID string) []byte {
	k := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(owner)+len(keyID)), uint64(len(owner)))
	k = append(k, owner...)
	return append(k, keyID...)
}

func ownerPrefix(owner string) []byte { return ownerKey(owner, "") }

// diskRecord is the stored form: a format version plus the record.
type diskRecord struct {
	V int `json:"v"`
	Record
}

func encode(r *Record) ([]byte, error) {
	b, err := json.Marshal(diskRecord{V: 1, Record: *r})
	if err != nil {
		return nil, errAbort{err}
	}
	return b, nil
}

// decode parses and checks a stored record; a record that is not complete
// for its state is reported as ErrCorrupt rather than returned.
func decode(keyID, v []byte) (Record, error) { return records.decode(keyID, v) }

func decodeRecord(keyID, v []byte) (Record, error) {
	var d diskRecord
	if err := json.Unmarshal(v, &d); err != nil {
		return Record{}, fmt.Errorf("%w: %q: %v", ErrCorrupt, keyID, err)
	}
	if d.V != 1 {
		return Record{}, fmt.Errorf("%w: %q: record version %d", ErrCorrupt, keyID, d.V)
	}
	if d.KeyID != string(keyID) {
		return Record{}, fmt.Errorf("%w: record stored under %q names %q", ErrCorrupt, keyID, d.KeyID)
	}
	if err := d.Record.complete(); err != nil {
		return Record{}, err
	}
	return d.Record, nil
}

// load reads keyID inside tx; deleted records count as absent unless
// withDeleted is set.
func load(tx *bolt.Tx, keyID string, withDeleted bool) (Record, error) {
	v := tx.Bucket(bucketKeys).Get([]byte(keyID))
	if v == nil {
		return Record{}, ErrNotFound
	}
	r, err := decode([]byte(keyID), v)
	if err != nil {
		return Record{}, err
	}
	if r.State == StateDeleted && !withDeleted {
		return Record{}, ErrNotFound
	}
	return r, nil
}

// put writes r and keeps the owner index in step with its state.
func put(tx *bolt.Tx, r *Record) error {
	v, err := encode(r)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketKeys).Put([]byte(r.KeyID), v); err != nil {
		return errAbort{err}
	}
	owners := tx.Bucket(bucketOwners)
	if r.State == StateDeleted {
		err = owners.Delete(ownerKey(r.Owner, r.KeyID))
	} else {
		err = owners.Put(ownerKey(r.Owner, r.KeyID), nil)
	}
	if err != nil {
		return errAbort{err}
	}
	return nil
}

// CreateSlot implements Store.
func (s *Bolt) CreateSlot(ctx context.Context, sl Slot) error {
	if err := sl.validate(); err != nil {
		return err
	}
	r := newSlot(sl, s.now())
	return s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketKeys).Get([]byte(r.KeyID)) != nil {
			return fmt.Errorf("%w: %q", ErrDuplicate, r.KeyID)
		}
		// Counted in the inserting transaction: with group commit, earlier
		// requests of the same group are already visible here.
		if sl.Quota > 0 && countOwned(tx, r.Owner, sl.Quota) >= sl.Quota {
			return fmt.Errorf("%w: %d live keys", ErrQuotaExceeded, sl.Quota)
		}
		return put(tx, &r)
	})
}

// modifyOwned applies fn to the owner's live record in one write
// transaction and stores the result unless fn reports no change.
func (s *Bolt) modifyOwned(ctx context.Context, owner, keyID string, fn func(*Record) (changed bool, err error)) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		r, err := loadOwned(tx, owner, keyID)
		if err != nil {
			return err
		}
		if changed, err := fn(&r); err != nil || !changed {
			return err
		}
		return put(tx, &r)
	})
}

// Commit implements Store.
func (s *Bolt) Commit(ctx context.Context, owner, keyID string, c Commitment) error {
	now := s.now()
	return s.modifyOwned(ctx, owner, keyID, func(r *Record) (bool, error) { return true, commitTo(r, c, now) })
}

// Prepare implements Store.
func (s *Bolt) Prepare(ctx context.Context, owner, keyID string, c Commitment) error {
	now := s.now()
	return s.modifyOwned(ctx, owner, keyID, func(r *Record) (bool, error) { return true, prepareTo(r, c, now) })
}

// MarkReady implements Store. The Bolt store writes it durably like any
// other write (through group commit); callers keep it off their critical
// path.
func (s *Bolt) MarkReady(ctx context.Context, owner, keyID string, transcript, recoveryData []byte) error {
	now := s.now()
	return s.modifyOwned(ctx, owner, keyID, func(r *Record) (bool, error) { return markReady(r, transcript, recoveryData, now) })
}

// MarkRefused implements Store.
func (s *Bolt) MarkRefused(ctx context.Context, owner, keyID string, transcript, by []byte) error {
	return s.modifyOwned(ctx, owner, keyID, func(r *Record) (bool, error) { return markRefused(r, transcript, by) })
}

// Discard implements Store.
func (s *Bolt) Discard(ctx context.Context, owner, keyID string, transcript []byte) error {
	if err := s.modifyOwned(ctx, owner, keyID, func(r *Record) (bool, error) { return true, discard(r, transcript) }); err != nil {
		return err
	}
	// The discarded share must not linger in the freed page (scrub.go).
	_, err := s.scrub()
	return err
}

// loadOwned reads the owner's live record. The owner index is consulted
// first so that an absent key and another owner's key take the same path.
func loadOwned(tx *bolt.Tx, owner, keyID string) (Record, error) {
	if tx.Bucket(bucketOwners).Get(ownerKey(owner, keyID)) == nil {
		return Record{}, ErrNotFound
	}
	r, err := load(tx, keyID, false)
	if err != nil {
		return Record{}, err
	}
	if r.Owner != owner {
		return Record{}, fmt.Errorf("%w: owner index of %q disagrees with its record", ErrCorrupt, keyID)
	}
	return r, nil
}

// Get implements Store.
func (s *Bolt) Get(ctx context.Context, keyID string) (r Record, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		r, err = load(tx, keyID, false)
		return err
	})
	return r, err
}

// GetOwned implements Store.
func (s *Bolt) GetOwned(ctx context.Context, owner, keyID string) (r Record, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		r, err = loadOwned(tx, owner, keyID)
		return err
	})
	return r, err
}

// ListByOwner implements Store.
func (s *Bolt) ListByOwner(ctx context.Context, owner string) (out []Record, err error) {
	prefix := ownerPrefix(owner)
	err = s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOwners).Cursor()
		for k, _ := c.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			r, err := loadOwned(tx, owner, string(k[len(prefix):]))
			if err != nil {
				if errors.Is(err, ErrNotFound) {
					return fmt.Errorf("%w: owner index names missing key %q", ErrCorrupt, k[len(prefix):])
				}
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// CountByOwner implements Store: a scan of the owner index, decoding nothing.
func (s *Bolt) CountByOwner(ctx context.Context, owner string) (n int, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		n = countOwned(tx, owner, 0)
		return nil
	})
	return n, err
}

// countOwned counts the owner's live records, stopping at limit if > 0.
func countOwned(tx *bolt.Tx, owner string, limit int) (n int) {
	prefix := ownerPrefix(owner)
	c := tx.Bucket(bucketOwners).Cursor()
	for k, _ := c.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
		if n++; limit > 0 && n >= limit {
			break
		}
	}
	return n
}

// ListAll implements Store.
func (s *Bolt) ListAll(ctx context.Context) (out []Record, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
			r, err := decode(k, v)
			if err != nil {
				return err
			}
			if r.State != StateDeleted {
				out = append(out, r)
			}
			return nil
		})
	})
	return out, err
}

// Reseal implements Store. It never uses group commit: fn talks to the HSM
// and must run exactly once.
func (s *Bolt) Reseal(ctx context.Context, keyID string, fn ResealFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		r, err := load(tx, keyID, false)
		if err != nil {
			return err
		}
		share, ident, err := fn(r)
		if err != nil {
			return err
		}
		if err := resealTo(&r, share, ident); err != nil {
			return err
		}
		return put(tx, &r)
	})
	var ab errAbort
	if errors.As(err, &ab) {
		return fmt.Errorf("store: write failed: %w", ab.err)
	}
	return err
}

// Delete implements Store. The record is rewritten as a tombstone that
// keeps only what reserves the key_id (key_id, owner, scheme, timestamps),
// in the same transaction that drops it from the owner index; then every
// free page of the file, where the old versions of the record now sit, is
// zeroed and synced (scrub.go) before Delete returns. The caller destroys
// the key's data key only after Delete returned (daemon/quorum/seal.go).
func (s *Bolt) Delete(ctx context.Context, owner, keyID string) error {
	now := s.now()
	if err := s.modifyOwned(ctx, owner, keyID, func(r *Record) (bool, error) { *r = tombstone(*r, now); return true, nil }); err != nil {
		return err
	}
	_, err := s.scrub()
	return err
}
