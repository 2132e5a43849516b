package secmem_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon/secmem"
)

func newArena(t *testing.T, slots int) *secmem.Arena {
	t.Helper()
	a, err := secmem.New(slots)
	if err != nil {
		t.Fatalf("New(%d): %v", slots, err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

func allZero(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

// slotOffset finds a held slot inside the arena's mapping.
func slotOffset(t *testing.T, a *secmem.Arena, s *secmem.Slot) int {
	t.Helper()
	raw := a.Raw()
	off := int(uintptr(unsafe.Pointer(&s.Bytes()[0])) - uintptr(unsafe.Pointer(&raw[0])))
	if off < 0 || off+secmem.SlotSize > len(raw) || off%secmem.SlotSize != 0 {
		t.Fatalf("slot at offset %d is not a slot of the arena (size %d)", off, len(raw))
	}
	return off
}

// mappingFlags returns the VmFlags of the /proc/self/smaps entry holding
// addr, and the process's VmLck in kB.
func mappingFlags(t *testing.T, addr uintptr) []string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inside := false
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := parseRange(line); ok {
			inside = addr >= lo && addr < hi
			continue
		}
		if v, ok := strings.CutPrefix(line, "VmFlags:"); ok && inside {
			return strings.Fields(v)
		}
	}
	t.Fatalf("address %#x is in no mapping of /proc/self/smaps", addr)
	return nil
}

func parseRange(line string) (lo, hi uintptr, ok bool) {
	f, _, _ := strings.Cut(line, " ")
	a, b, found := strings.Cut(f, "-")
	if !found {
		return 0, 0, false
	}
	x, err1 := strconv.ParseUint(a, 16, 64)
	y, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uintptr(x), uintptr(y), true
}

func vmLckKB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmLck:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmLck in /proc/self/status")
	return 0
}

// TestNew: the mapping is page-rounded, zero, locked (VmLck grows by its
// size, smaps shows "lo") and excluded from core dumps ("dd"); Close gives
// the locked memory back.
func TestNew(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("checks /proc (Linux)")
	}
	page := os.Getpagesize()
	for _, slots := range []int{1, 3, page / secmem.SlotSize, page/secmem.SlotSize + 1, 512} {
		t.Run(strconv.Itoa(slots), func(t *testing.T) {
			before := vmLckKB(t)
			a, err := secmem.New(slots)
			if err != nil {
				t.Fatal(err)
			}
			want := (slots*secmem.SlotSize + page - 1) / page * page
			if a.Size() != want || len(a.Raw()) != want || a.Slots() != slots || a.InUse() != 0 {
				t.Fatalf("size %d (raw %d), slots %d, in use %d; want size %d, %d slots", a.Size(), len(a.Raw()), a.Slots(), a.InUse(), want, slots)
			}
			if !allZero(a.Raw()) || !a.Zeroed() {
				t.Fatal("a new arena is not zero")
			}
			if got := vmLckKB(t) - before; got < want/1024 {
				t.Errorf("VmLck grew by %d kB, want at least %d", got, want/1024)
			}
			flags := mappingFlags(t, uintptr(unsafe.Pointer(&a.Raw()[0])))
			for _, f := range []string{"lo", "dd"} {
				if !slicesContains(flags, f) {
					t.Errorf("mapping flags %q lack %q (lo = locked, dd = not dumped)", flags, f)
				}
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			if got := vmLckKB(t); got != before {
				t.Errorf("VmLck %d kB after Close, %d before New", got, before)
			}
		})
	}
}

func slicesContains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestNewRejectsBadSizes(t *testing.T) {
	for _, n := range []int{0, -1, 1<<24 + 1} {
		if a, err := secmem.New(n); err == nil {
			a.Close()
			t.Errorf("New(%d) succeeded", n)
		}
	}
}

// TestReleaseZeroes: a slot holds what was written to it, in the arena's
// own memory, until Release wipes exactly that memory.
func TestReleaseZeroes(t *testing.T) {
	a := newArena(t, 4)
	ctx := context.Background()
	cases := []struct {
		name  string
		write func(s *secmem.Slot)
	}{
		{"bytes", func(s *secmem.Slot) { copy(s.Bytes(), bytes.Repeat([]byte{0xa5}, secmem.SlotSize)) }},
		{"last byte", func(s *secmem.Slot) { s.Bytes()[secmem.SlotSize-1] = 1 }},
		{"scalar", func(s *secmem.Slot) { s.Scalar().SetInt(7) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := a.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			off := slotOffset(t, a, s)
			if !allZero(a.Raw()[off : off+secmem.SlotSize]) {
				t.Fatal("acquired slot is not zero")
			}
			c.write(s)
			if allZero(a.Raw()[off : off+secmem.SlotSize]) {
				t.Fatal("the write did not reach the arena's memory")
			}
			if !a.Zeroed() {
				t.Fatal("Zeroed looked at a held slot")
			}
			s.Release()
			if !allZero(a.Raw()) || !a.Zeroed() || a.InUse() != 0 {
				t.Fatalf("after Release: raw zero %t, Zeroed %t, in use %d", allZero(a.Raw()), a.Zeroed(), a.InUse())
			}
			s.Release() // no-op
			if a.InUse() != 0 {
				t.Fatal("a second Release changed the arena")
			}
		})
	}
}

// TestZeroedSeesDirt: Zeroed inspects free slots and the page tail.
func TestZeroedSeesDirt(t *testing.T) {
	a := newArena(t, 3)
	for _, off := range []int{0, secmem.SlotSize + 17, 3*secmem.SlotSize - 1, 3 * secmem.SlotSize, len(a.Raw()) - 1} {
		a.Raw()[off] = 0x80
		if a.Zeroed() {
			t.Errorf("dirt at offset %d not seen", off)
		}
		a.Raw()[off] = 0
	}
	if !a.Zeroed() {
		t.Fatal("clean arena reported dirty")
	}
}

func TestUseAfterReleasePanics(t *testing.T) {
	a := newArena(t, 1)
	s, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
	defer func() {
		if recover() == nil {
			t.Fatal("Scalar after Release did not panic")
		}
	}()
	s.Scalar().SetInt(1)
}

// TestScalarLayout: the unsafe view in Slot.Scalar needs ModNScalar to be
// plain words without pointers.
func TestScalarLayout(t *testing.T) {
	var noPointers func(reflect.Type) bool
	noPointers = func(typ reflect.Type) bool {
		switch typ.Kind() {
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return true
		case reflect.Array:
			return noPointers(typ.Elem())
		case reflect.Struct:
			for i := range typ.NumField() {
				if !noPointers(typ.Field(i).Type) {
					return false
				}
			}
			return true
		}
		return false
	}
	typ := reflect.TypeOf(btcec.ModNScalar{})
	if !noPointers(typ) || typ.Size() != secmem.ScalarSize {
		t.Fatalf("%v (size %d) is not %d bytes of plain words", typ, typ.Size(), secmem.ScalarSize)
	}
}

func scalarHex(t *testing.T, h string) (b [32]byte) {
	t.Helper()
	raw, err := hex.DecodeString(h)
	if err != nil || len(raw) != 32 {
		t.Fatalf("bad hex %q", h)
	}
	return [32]byte(raw)
}

// TestScalarRoundTrip: values set through Scalar live in the slot's first
// ScalarSize bytes, read back unchanged, and arithmetic in place agrees with
// the same arithmetic on the heap; locked and unlocked slots alike.
func TestScalarRoundTrip(t *testing.T) {
	var rnd [32]byte
	rand.Read(rnd[:])
	values := map[string][32]byte{
		"one":    scalarHex(t, "0000000000000000000000000000000000000000000000000000000000000001"),
		"n-1":    scalarHex(t, "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140"),
		"high":   scalarHex(t, "8000000000000000000000000000000000000000000000000000000000000000"),
		"random": rnd,
	}
	a := newArena(t, 2)
	kinds := map[string]func() *secmem.Slot{
		"locked": func() *secmem.Slot {
			s, err := a.Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"unlocked": func() *secmem.Slot { return secmem.Unlocked(1)[0] },
	}
	var mulBy btcec.ModNScalar
	mulBy.SetInt(0x1234567)
	for kind, get := range kinds {
		for name, v := range values {
			t.Run(kind+"/"+name, func(t *testing.T) {
				s := get()
				mem := s.Bytes()
				var heap btcec.ModNScalar
				heap.SetBytes(&v)
				s.Scalar().SetBytes(&v)
				if got := s.Scalar().Bytes(); got != heap.Bytes() {
					t.Fatalf("round trip %x, want %x", got, heap.Bytes())
				}
				if !bytes.Equal(mem[:secmem.ScalarSize], unsafe.Slice((*byte)(unsafe.Pointer(&heap)), secmem.ScalarSize)) {
					t.Fatal("the scalar does not live in the slot's first ScalarSize bytes")
				}
				if !allZero(mem[secmem.ScalarSize:]) {
					t.Fatal("the scalar spilled past ScalarSize")
				}
				heap.Mul(&mulBy)
				s.Scalar().Mul(&mulBy)
				if !s.Scalar().Equals(&heap) {
					t.Fatal("in-place arithmetic differs from the heap's")
				}
				s.Release()
				if !allZero(mem) {
					t.Fatal("Release left bytes")
				}
			})
		}
	}
}

// TestAcquireWaits: with every slot held, Acquire blocks until a Release,
// and gives up cleanly when its context ends.
func TestAcquireWaits(t *testing.T) {
	a := newArena(t, 2)
	held, err := a.AcquireN(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		s, err := a.Acquire(ctx)
		if s != nil || !errors.Is(err, secmem.ErrNoSlot) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, %v; want ErrNoSlot wrapping DeadlineExceeded", s, err)
		}
	})
	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := a.Acquire(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want Canceled", err)
		}
	})
	t.Run("released", func(t *testing.T) {
		got := make(chan *secmem.Slot)
		go func() {
			s, err := a.Acquire(context.Background())
			if err != nil {
				t.Error(err)
			}
			got <- s
		}()
		select {
		case <-got:
			t.Fatal("Acquire returned while every slot was held")
		case <-time.After(30 * time.Millisecond):
		}
		held[0].Bytes()[0] = 0xff
		held[0].Release()
		s := <-got
		if s == nil || !allZero(s.Bytes()) {
			t.Fatal("the waiter did not get a zeroed slot")
		}
		s.Release()
	})
	held[1].Release()
	if a.InUse() != 0 {
		t.Fatalf("%d slots still held", a.InUse())
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(context.Background()); !errors.Is(err, secmem.ErrClosed) {
		t.Fatalf("Acquire after Close: %v", err)
	}
}

// TestAcquireNOrder: AcquireN is all-or-nothing and first come, first
// served, and a waiter that gives up lets the next one through.
func TestAcquireNOrder(t *testing.T) {
	a := newArena(t, 3)
	ctx := context.Background()
	if _, err := a.AcquireN(ctx, 4); err == nil {
		t.Fatal("AcquireN above the arena's size succeeded")
	}
	if _, err := a.AcquireN(ctx, 0); err == nil {
		t.Fatal("AcquireN(0) succeeded")
	}
	held, err := a.AcquireN(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		name  string
		slots []*secmem.Slot
		err   error
	}
	results := make(chan result, 3)
	wait := func(ctx context.Context, name string, n int) {
		s, err := a.AcquireN(ctx, n)
		results <- result{name, s, err}
	}
	until := func(what string, cond func() bool) {
		t.Helper()
		for range 5000 {
			if cond() {
				return
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	// big wants 2 with 1 free: it waits, and so must small behind it
	// although 1 would do for small.
	bigCtx, cancelBig := context.WithCancel(ctx)
	go wait(bigCtx, "big", 2)
	until("big to queue", func() bool { return a.Waiters() == 1 })
	go wait(ctx, "small", 1)
	until("small to queue", func() bool { return a.Waiters() == 2 })
	select {
	case r := <-results:
		t.Fatalf("%s got through while big waits (%v)", r.name, r.err)
	case <-time.After(30 * time.Millisecond):
	}
	cancelBig()
	got := map[string]result{}
	for range 2 {
		r := <-results
		got[r.name] = r
	}
	if r := got["big"]; !errors.Is(r.err, context.Canceled) || r.slots != nil {
		t.Fatalf("big: %d slots, %v; want cancelled", len(r.slots), r.err)
	}
	r := got["small"]
	if r.err != nil || len(r.slots) != 1 {
		t.Fatalf("small: %d slots, %v; want one slot once big gave up", len(r.slots), r.err)
	}
	// Now all three are held: a waiter for 2 gets both of the next two
	// releases, in one piece.
	if a.InUse() != 3 || a.Waiters() != 0 {
		t.Fatalf("in use %d, waiting %d; want 3, 0", a.InUse(), a.Waiters())
	}
	go wait(ctx, "pair", 2)
	until("pair to queue", func() bool { return a.Waiters() == 1 })
	held[0].Release()
	select {
	case r := <-results:
		t.Fatalf("pair got %d slots with one free (%v)", len(r.slots), r.err)
	case <-time.After(30 * time.Millisecond):
	}
	r.slots[0].Release()
	r = <-results
	if r.name != "pair" || r.err != nil || len(r.slots) != 2 {
		t.Fatalf("%s: %d slots, %v", r.name, len(r.slots), r.err)
	}
	secmem.ReleaseAll(r.slots)
	held[1].Release()
	if a.InUse() != 0 || !a.Zeroed() {
		t.Fatalf("in use %d, zeroed %t", a.InUse(), a.Zeroed())
	}
}

// TestConcurrent: many goroutines share a small arena; no slot is ever
// handed to two holders at once (each writes its mark and checks it after
// yielding), every call gets through, and everything ends zeroed.
func TestConcurrent(t *testing.T) {
	const workers, rounds, slots = 16, 200, 5
	a := newArena(t, slots)
	var wg sync.WaitGroup
	var total sync.Map
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mark := byte(w + 1)
			n := 0
			for i := range rounds {
				k := 1 + (w+i)%3
				ss, err := a.AcquireN(context.Background(), k)
				if err != nil {
					t.Error(err)
					return
				}
				for _, s := range ss {
					for j := range s.Bytes() {
						s.Bytes()[j] = mark
					}
				}
				runtime.Gosched()
				for _, s := range ss {
					if bytes.Count(s.Bytes(), []byte{mark}) != secmem.SlotSize {
						t.Errorf("worker %d: slot shared with another holder", w)
					}
				}
				secmem.ReleaseAll(ss)
				n += k
			}
			total.Store(w, n)
		}()
	}
	wg.Wait()
	var want uint64
	total.Range(func(_, v any) bool { want += uint64(v.(int)); return true })
	if a.InUse() != 0 || !allZero(a.Raw()) || a.Acquired() != want {
		t.Fatalf("in use %d, raw zero %t, acquired %d (want %d)", a.InUse(), allZero(a.Raw()), a.Acquired(), want)
	}
}

func TestCloseRefusesWhileHeld(t *testing.T) {
	a, err := secmem.New(2)
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Scalar().SetInt(3)
	if err := a.Close(); !errors.Is(err, secmem.ErrInUse) {
		t.Fatalf("Close with a held slot: %v", err)
	}
	if s.Scalar().IsZero() {
		t.Fatal("a refused Close touched a held slot")
	}
	s.Release()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestLockErrorText(t *testing.T) {
	cases := []struct {
		e    *secmem.LockError
		want []string
	}{
		{&secmem.LockError{Need: 12800000, Limit: 8 << 20, Err: syscall.ENOMEM}, []string{"12800000 bytes", "RLIMIT_MEMLOCK is 8388608 bytes", "cannot allocate memory"}},
		{&secmem.LockError{Need: 4096, Limit: secmem.Unlimited, Err: syscall.EPERM}, []string{"4096 bytes", "RLIMIT_MEMLOCK is unlimited"}},
	}
	for _, c := range cases {
		for _, w := range c.want {
			if !strings.Contains(c.e.Error(), w) {
				t.Errorf("%q lacks %q", c.e.Error(), w)
			}
		}
		if !errors.Is(c.e, c.e.Err) {
			t.Errorf("%v does not unwrap to its errno", c.e)
		}
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	a, err := secmem.New(64)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ss, err := a.AcquireN(ctx, 2)
			if err != nil {
				b.Error(err)
				return
			}
			ss[0].Scalar().SetInt(1)
			secmem.ReleaseAll(ss)
		}
	})
}
