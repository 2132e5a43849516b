package hsm

import (
	"sync"
	"time"
)

// DataKeyPool keeps data keys made ahead of need, so that making a key slot
// does not wait for the token to create one (milliseconds on SoftHSM, one at
// a time): a background goroutine keeps up to Size keys on the token, each
// for a fresh key_id chosen by the pool, and Take hands one out.
//
// A pooled key is an ordinary data key (datakey.go) whose record does not
// exist yet, so it obeys the orphan sweep's rule: a data key without a live
// record older than the sweep's grace is destroyed. The pool hands out only
// keys younger than MaxAge (below that grace) and destroys older ones
// itself, so a sweep (this daemon's at start, or a replica's sharing the
// token) never destroys a key that may still be handed out. Keys left by a
// crash are never reused (nothing says whether one was handed out and its
// record deleted since, and "delete destroys" forbids reusing those): the
// sweep destroys them once past its grace. Close destroys the keys still
// pooled.
type DataKeyPool struct {
	h   dataKeyMaker
	cfg DataKeyPoolConfig
	now func() time.Time

	mu     sync.Mutex
	keys   []pooledKey // oldest first
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

// DataKeyPoolConfig configures a DataKeyPool.
type DataKeyPoolConfig struct {
	Size   int             // keys kept ready; 0: no pool
	MaxAge time.Duration   // a key older than this is destroyed, not handed out
	NewID  func() string   // the key_id of each key made
	Busy   func() bool     // optional: while true, making keys waits (a key made during a ceremony slows it down)
	Log    func(err error) // optional: token errors (the pool retries)
}

type pooledKey struct {
	keyID   string
	created time.Time
}

// dataKeyMaker is what the pool needs from the token (*HSM).
type dataKeyMaker interface {
	CreateNewDataKey(keyID string) error // the pool mints every keyID itself
	DestroyDataKey(keyID string) error
}

// poolRetry spaces refills after a token error; poolBusyPoll re-checks Busy.
const (
	poolRetry    = time.Second
	poolBusyPoll = 10 * time.Millisecond
)

// NewDataKeyPool starts a pool on h as cfg says. Size 0 returns nil: a nil
// pool hands nothing out.
func NewDataKeyPool(h dataKeyMaker, cfg DataKeyPoolConfig) *DataKeyPool {
	if cfg.Size <= 0 {
		return nil
	}
	p := &DataKeyPool{h: h, cfg: cfg, now: time.Now, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go p.fill()
	return p
}

// Take hands out a pooled data key's key_id, never the same one twice, or
// reports false when none is ready (the caller then makes one itself). The
// caller owns the key from then on: it writes its record or destroys it.
func (p *DataKeyPool) Take() (string, bool) {
	if p == nil {
		return "", false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.signal() // refill
	if p.closed {
		return "", false
	}
	// Oldest first, so that few keys age out unused; stale ones stay for
	// fill to destroy.
	for i, k := range p.keys {
		if p.now().Sub(k.created) < p.cfg.MaxAge {
			p.keys = append(p.keys[:i], p.keys[i+1:]...)
			return k.keyID, true
		}
	}
	return "", false
}

// Len is how many keys are pooled now.
func (p *DataKeyPool) Len() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.keys)
}

// Close stops the refill and destroys the keys still pooled (those a crash
// would leave to the sweep).
func (p *DataKeyPool) Close() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.signal()
	<-p.done
	p.mu.Lock()
	keys := p.keys
	p.keys = nil
	p.mu.Unlock()
	var first error
	for _, k := range keys {
		if err := p.h.DestroyDataKey(k.keyID); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (p *DataKeyPool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// fill keeps the pool full and fresh until Close.
func (p *DataKeyPool) fill() {
	defer close(p.done)
	for {
		p.mu.Lock()
		closed := p.closed
		var stale *pooledKey
		if len(p.keys) > 0 && p.now().Sub(p.keys[0].created) >= p.cfg.MaxAge {
			k := p.keys[0]
			p.keys = p.keys[1:]
			stale = &k
		}
		short := len(p.keys) < p.cfg.Size
		var next time.Duration // until the oldest key goes stale
		if len(p.keys) > 0 {
			next = p.cfg.MaxAge - p.now().Sub(p.keys[0].created)
		}
		p.mu.Unlock()
		switch {
		case closed:
			return
		case stale != nil:
			if err := p.h.DestroyDataKey(stale.keyID); err != nil {
				p.report(err) // the sweep destroys it past its grace
			}
			continue
		case short && p.cfg.Busy != nil && p.cfg.Busy():
			p.sleep(poolBusyPoll)
			continue
		case short:
			id, created := p.cfg.NewID(), p.now()
			if err := p.h.CreateNewDataKey(id); err != nil {
				p.report(err)
				p.sleep(poolRetry)
				continue
			}
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				_ = p.h.DestroyDataKey(id)
				return
			}
			p.keys = append(p.keys, pooledKey{id, created})
			p.mu.Unlock()
			continue
		}
		p.sleep(next)
	}
}

// sleep waits d or until woken (a Take, Close).
func (p *DataKeyPool) sleep(d time.Duration) {
	t := time.NewTimer(max(d, time.Millisecond))
	defer t.Stop()
	select {
	case <-p.wake:
	case <-t.C:
	}
}

func (p *DataKeyPool) report(err error) {
	if p.cfg.Log != nil {
		p.cfg.Log(err)
	}
}
