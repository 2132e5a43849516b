package daemon

import (
	"fmt"
	"sync"
	"time"
)

// Fair sharing (DESIGN §2, §9). A request passes two gates, neither of which
// ever waits:
//
//   - before authentication, the admission gate bounds all work in flight
//     (short + ceremony budgets + the admin reserve), so requests nobody has
//     authenticated yet cannot pile up;
//   - right after authentication, before the handler does any work, the
//     caller takes a seat of its route's class: from its own share
//     (user_max_requests / user_max_ceremonies) and from the class's global
//     budget. An admin whose short request finds the budget full takes one
//     of the reserved admin seats instead, so an admin can always revoke a
//     key that saturates everything.
//
// A ceremony's seat also accounts for its two locked secret slots: the
// ceremony budget is sized within server.locked_secret_slots (see
// ServerConfig.Ceremonies), so one user's ceremonies can hold at most
// 2 × user_max_ceremonies slots and never exhaust the arena.

// class is what a route costs.
type class int

const (
	classOpen     class = iota // probes and scrapes: no budget
	classShort                 // answered from the store, HSM or policy source
	classCeremony              // waits on a room for up to ceremony.timeout
)

// Rejection reasons (the reason label of quorumd_http_rejected_total).
const (
	rejectAdmission     = "admission"       // too many requests before authentication
	rejectRequests      = "requests"        // short-request budget full
	rejectCeremonies    = "ceremonies"      // ceremony budget full
	rejectUserRequests  = "user_requests"   // the caller's share of short requests
	rejectUserCeremony  = "user_ceremonies" // the caller's share of ceremonies
	rejectRoomRate      = "room_rate"       // the caller's room creation rate
	rejectRoomQuota     = "room_quota"      // the caller's rooms in the window
	rejectBadPath       = "bad_path"        // encoded or dot segments, double slashes
	rejectDuplicateAuth = "duplicate_auth"  // two Authorization headers
)

// seats is a non-blocking counting semaphore.
type seats chan struct{}

func (s seats) take() bool {
	select {
	case s <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s seats) give() { <-s }

// userLoad is what one user holds now.
type userLoad struct{ short, ceremony int }

// budgets holds the global budgets and every user's current share.
type budgets struct {
	admission seats
	short     seats
	ceremony  seats
	admin     seats
	userShort int
	userCer   int
	retry     time.Duration // Retry-After of a ceremony rejection

	mu    sync.Mutex
	users map[string]*userLoad // present only while the user holds a seat
}

func newBudgets(s ServerConfig, ceremonyTimeout time.Duration) *budgets {
	return &budgets{
		admission: make(seats, s.MaxConcurrentRequests+s.Ceremonies()+s.AdminReservedRequests),
		short:     make(seats, s.MaxConcurrentRequests),
		ceremony:  make(seats, s.Ceremonies()),
		admin:     make(seats, s.AdminReservedRequests),
		userShort: s.UserRequests(),
		userCer:   s.UserCeremonies(),
		// A ceremony seat frees when a ceremony ends; a tenth of the
		// timeout is a fair guess that does not invite a retry storm.
		retry: max(time.Second, ceremonyTimeout/10),
		users: map[string]*userLoad{},
	}
}

// admit takes c's seat of class k and returns its release, or an *Overload
// naming the budget that is full.
func (b *budgets) admit(c Caller, k class) (func(), error) {
	switch k {
	case classShort:
		return b.admitShort(c)
	case classCeremony:
		return b.admitCeremony(c)
	}
	return func() {}, nil
}

func (b *budgets) admitShort(c Caller) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.user(c.UserID)
	var pool seats
	switch {
	case u.short < b.userShort && b.short.take():
		pool = b.short
	case c.Admin && b.admin.take():
		pool = b.admin
	case u.short >= b.userShort:
		b.drop(c.UserID, u)
		return nil, &Overload{Reason: rejectUserRequests, RetryAfter: time.Second,
			Msg: fmt.Sprintf("server busy: this user already has %d requests in flight (server.user_max_requests), retry later", b.userShort)}
	default:
		b.drop(c.UserID, u)
		return nil, &Overload{Reason: rejectRequests, RetryAfter: time.Second,
			Msg: "server busy: too many requests in flight, retry later"}
	}
	u.short++
	return func() {
		pool.give()
		b.mu.Lock()
		u.short--
		b.drop(c.UserID, u)
		b.mu.Unlock()
	}, nil
}

func (b *budgets) admitCeremony(c Caller) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.user(c.UserID)
	if u.ceremony >= b.userCer {
		b.drop(c.UserID, u)
		return nil, &Overload{Reason: rejectUserCeremony, RetryAfter: b.retry,
			Msg: fmt.Sprintf("server busy: this user already has %d ceremonies in flight (server.user_max_ceremonies), retry later", b.userCer)}
	}
	if !b.ceremony.take() {
		b.drop(c.UserID, u)
		return nil, &Overload{Reason: rejectCeremonies, RetryAfter: b.retry,
			Msg: "server busy: too many ceremonies in flight, retry later"}
	}
	u.ceremony++
	return func() {
		b.ceremony.give()
		b.mu.Lock()
		u.ceremony--
		b.drop(c.UserID, u)
		b.mu.Unlock()
	}, nil
}

// user returns id's load, creating it; b.mu is held.
func (b *budgets) user(id string) *userLoad {
	u := b.users[id]
	if u == nil {
		u = &userLoad{}
		b.users[id] = u
	}
	return u
}

// drop forgets an idle user so the map holds only users with seats; b.mu
// is held.
func (b *budgets) drop(id string, u *userLoad) {
	if u.short == 0 && u.ceremony == 0 {
		delete(b.users, id)
	}
}

// saturation names the budgets that are full, for /readyz.
func (b *budgets) saturation() []string {
	var full []string
	if len(b.ceremony) == cap(b.ceremony) {
		full = append(full, fmt.Sprintf("ceremony budget full (%d in flight)", cap(b.ceremony)))
	}
	if len(b.short) == cap(b.short) {
		full = append(full, fmt.Sprintf("request budget full (%d in flight)", cap(b.short)))
	}
	return full
}
