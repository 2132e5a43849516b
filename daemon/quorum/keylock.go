package quorum

import (
	"context"
	"fmt"
	"sync"

	"github.com/quorumd/quorumd/daemon/store"
)

// keyLocks serialises imports per key so that two concurrent requests for
// one slot cannot both run a ceremony (the store's Commit is the final
// guard). Entries are reference-counted and dropped when unused, so the map
// holds only keys with an import in flight.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	refs int
}

// lock takes key's lock and returns its unlock function.
func (k *keyLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// lockKey serialises a key's imports and recoveries: within this process
// through importLocks, and across replicas too when the store is shared (a
// store.KeyLocker). The local lock comes first, so a replica's callers
// queue in memory rather than each polling the database.
func (s *Service) lockKey(ctx context.Context, owner, keyID string) (unlock func(), err error) {
	local := importLocks.lock(owner + "\x00" + keyID)
	kl, ok := s.Store.(store.KeyLocker)
	if !ok {
		return local, nil
	}
	shared, err := kl.LockKey(ctx, keyID)
	if err != nil {
		local()
		return nil, fmt.Errorf("waiting for the key's lock: %w", err)
	}
	return func() { shared(); local() }, nil
}
