package secmem

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/btcsuite/btcd/btcec/v2"
)

const (
	// SlotSize is the size in bytes of one slot.
	SlotSize = 64
	// ScalarSize is the part of a slot that Slot.Scalar views; the rest of
	// the slot is free scratch space (e.g. for the scalar's encoding).
	ScalarSize = 32
)

// Compile-time checks that a ModNScalar is exactly ScalarSize bytes, so the
// cast in Slot.Scalar stays inside its slot; TestScalarLayout checks it
// holds no pointers.
var (
	_ [ScalarSize - unsafe.Sizeof(btcec.ModNScalar{})]byte
	_ [unsafe.Sizeof(btcec.ModNScalar{}) - ScalarSize]byte
	_ [8 - unsafe.Alignof(btcec.ModNScalar{})]byte // slots are 8-aligned
)

var (
	// ErrClosed is returned by Acquire after Close.
	ErrClosed = errors.New("secmem: arena closed")
	// ErrInUse is returned by Close while a slot is held.
	ErrInUse = errors.New("secmem: slots still held")
	// ErrNoSlot wraps the context's error when a caller gave up waiting.
	ErrNoSlot = errors.New("secmem: no free locked slot")
)

// LockError reports that the arena's memory could not be locked: Need is
// the size asked for, Limit the soft RLIMIT_MEMLOCK at the time (Unlimited
// when infinite) and Err the errno of mlock(2).
type LockError struct {
	Need  uint64
	Limit uint64
	Err   error
}

// Unlimited is LockError.Limit for RLIMIT_INFINITY.
const Unlimited = ^uint64(0)

func (e *LockError) Error() string {
	lim := "unlimited"
	if e.Limit != Unlimited {
		lim = fmt.Sprintf("%d bytes", e.Limit)
	}
	return fmt.Sprintf("secmem: cannot lock %d bytes (RLIMIT_MEMLOCK is %s): %v", e.Need, lim, e.Err)
}

func (e *LockError) Unwrap() error { return e.Err }

// Arena is a fixed set of locked slots. It is safe for concurrent use.
type Arena struct {
	slots int
	mu    sync.Mutex
	mem   []byte // the whole mapping (page-rounded); nil once closed
	free  []int  // indices of free slots
	// waiters queue AcquireN calls first come, first served, so a call
	// wanting several slots is not starved by single-slot calls.
	waiters  list.List // of *waiter
	closed   bool
	acquired uint64
}

type waiter struct {
	n     int
	ready chan []int // receives the granted indices; buffered
}

// New maps and locks an arena of slots slots. It fails with a *LockError
// (wrapping the errno, e.g. ENOMEM above RLIMIT_MEMLOCK) when the memory
// cannot be locked, and never hands out unlocked memory.
func New(slots int) (*Arena, error) {
	if slots < 1 || slots > 1<<24 {
		return nil, fmt.Errorf("secmem: %d slots: want 1..%d", slots, 1<<24)
	}
	mem, err := lockedMap(slots * SlotSize)
	if err != nil {
		return nil, err
	}
	a := &Arena{slots: slots, mem: mem, free: make([]int, slots)}
	for i := range a.free {
		a.free[i] = slots - 1 - i // pop order 0, 1, 2, …
	}
	return a, nil
}

// Slots returns the number of slots.
func (a *Arena) Slots() int { return a.slots }

// Size returns the bytes locked for the arena (slots rounded up to pages).
func (a *Arena) Size() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.mem)
}

// InUse returns the number of slots currently held.
func (a *Arena) InUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.slots - len(a.free)
}

// Acquired returns how many slots were handed out since New.
func (a *Arena) Acquired() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acquired
}

// Acquire returns one zeroed slot, waiting until one is free or ctx ends.
func (a *Arena) Acquire(ctx context.Context) (*Slot, error) {
	s, err := a.AcquireN(ctx, 1)
	if err != nil {
		return nil, err
	}
	return s[0], nil
}

// AcquireN returns n zeroed slots at once, all or none, waiting until
// enough are free or ctx ends (then the error wraps ErrNoSlot and
// ctx.Err()). Taking all of a call's slots in one step means callers never
// hold some slots while waiting for others, so they cannot deadlock.
func (a *Arena) AcquireN(ctx context.Context, n int) ([]*Slot, error) {
	if n < 1 || n > a.slots {
		return nil, fmt.Errorf("secmem: %d slots asked of an arena of %d", n, a.slots)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoSlot, err)
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, ErrClosed
	}
	if a.waiters.Len() == 0 && len(a.free) >= n {
		idx := a.takeLocked(n)
		a.mu.Unlock()
		return a.wrap(idx), nil
	}
	w := &waiter{n: n, ready: make(chan []int, 1)}
	e := a.waiters.PushBack(w)
	a.mu.Unlock()

	select {
	case idx := <-w.ready:
		return a.wrap(idx), nil
	case <-ctx.Done():
		a.mu.Lock()
		select {
		case idx := <-w.ready: // granted while ctx ended: give them back
			a.free = append(a.free, idx...)
			a.acquired -= uint64(len(idx))
		default:
			a.waiters.Remove(e)
		}
		a.grantLocked() // the queue's head may have changed
		a.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrNoSlot, ctx.Err())
	}
}

func (a *Arena) takeLocked(n int) []int {
	idx := make([]int, n)
	copy(idx, a.free[len(a.free)-n:])
	a.free = a.free[:len(a.free)-n]
	a.acquired += uint64(n)
	return idx
}

// grantLocked serves queued waiters in order while enough slots are free.
func (a *Arena) grantLocked() {
	for e := a.waiters.Front(); e != nil; e = a.waiters.Front() {
		w := e.Value.(*waiter)
		if len(a.free) < w.n {
			return
		}
		a.waiters.Remove(e)
		w.ready <- a.takeLocked(w.n)
	}
}

func (a *Arena) wrap(idx []int) []*Slot {
	out := make([]*Slot, len(idx))
	for i, j := range idx {
		out[i] = &Slot{a: a, idx: j, mem: a.mem[j*SlotSize : (j+1)*SlotSize : (j+1)*SlotSize]}
	}
	return out
}

func (a *Arena) release(idx int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.free = append(a.free, idx)
	a.grantLocked()
}

// Zeroed reports whether every free slot and the unused tail of the
// mapping hold only zero bytes; held slots are not looked at. It reads
// every byte it checks regardless of content (constant time in the data).
// With InUse() == 0 it covers the whole arena.
func (a *Arena) Zeroed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mem == nil {
		return true
	}
	var acc byte
	for _, i := range a.free {
		for _, b := range a.mem[i*SlotSize : (i+1)*SlotSize] {
			acc |= b
		}
	}
	for _, b := range a.mem[a.slots*SlotSize:] {
		acc |= b
	}
	return acc == 0
}

// Close zeroes, unlocks and unmaps the arena. It refuses with ErrInUse
// while any slot is held (the mapping then stays, so no slot memory can
// disappear under a holder); later Acquire calls fail with ErrClosed.
func (a *Arena) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	if len(a.free) != a.slots {
		return fmt.Errorf("%w: %d of %d", ErrInUse, a.slots-len(a.free), a.slots)
	}
	a.closed = true
	clear(a.mem)
	mem := a.mem
	a.mem = nil
	return unmap(mem)
}

// Slot is one SlotSize-byte piece of locked memory, zero when acquired and
// zeroed again by Release. A Slot is for one goroutine at a time and must
// not be used after Release.
type Slot struct {
	a   *Arena // nil for an Unlocked slot
	idx int
	mem []byte // nil after Release
}

// Bytes returns the slot's SlotSize bytes; the first ScalarSize of them are
// the memory Scalar views.
func (s *Slot) Bytes() []byte { return s.mem }

// Scalar returns the slot's first ScalarSize bytes as a ModNScalar, for
// arithmetic in place on a secret that then never leaves locked memory
// (the arithmetic's own temporaries excepted, see the package doc).
//
// The cast is sound because ModNScalar is a plain [8]uint32 with no
// pointers (so the garbage collector has nothing to trace in it), its size
// is ScalarSize and its alignment at most 8 (checked at compile time), slots
// start at multiples of SlotSize in a page-aligned mapping, and the mapping
// outlives every slot: Close refuses while a slot is held, and a released
// Slot drops its view so a stale Scalar call panics instead of aliasing
// another holder's secret.
func (s *Slot) Scalar() *btcec.ModNScalar {
	return (*btcec.ModNScalar)(unsafe.Pointer(&s.mem[0]))
}

// Release zeroes the slot and returns it to its arena; a second Release
// does nothing. Zeroing writes every byte whatever its value (constant
// time).
func (s *Slot) Release() {
	if s.mem == nil {
		return
	}
	clear(s.mem)
	s.mem = nil
	if s.a != nil {
		s.a.release(s.idx)
	}
}

// ReleaseAll releases every slot of slots.
func ReleaseAll(slots []*Slot) {
	for _, s := range slots {
		s.Release()
	}
}

// Unlocked returns n slots on the Go heap, for callers running without an
// arena (locking disabled, or tests): the same API and zeroing on Release,
// but the memory is neither locked nor excluded from core dumps. (Go's
// collector never moves heap objects, so it leaves no stray copies.)
func Unlocked(n int) []*Slot {
	out := make([]*Slot, n)
	for i := range out {
		// uint64 backing storage keeps the ModNScalar view 8-aligned.
		words := new([SlotSize / 8]uint64)
		out[i] = &Slot{mem: unsafe.Slice((*byte)(unsafe.Pointer(words)), SlotSize)}
	}
	return out
}
