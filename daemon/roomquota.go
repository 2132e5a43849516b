package daemon

import (
	"fmt"
	"sync"
	"time"
)

// roomQuota limits /create-room per user: a token bucket for the rate and a
// count of rooms made in the last window (the relay's default room TTL, so
// roughly the user's rooms still alive there). Checking and recording happen
// under one lock, so concurrent requests cannot all pass a check made before
// any of them counted; a room the relay then failed to make is given back.
type roomQuota struct {
	max    int
	window time.Duration
	rate   float64 // tokens a second
	burst  float64
	now    func() time.Time

	mu    sync.Mutex
	users map[string]*roomUser
	swept time.Time
}

type roomUser struct {
	tokens float64
	filled time.Time   // when tokens was last brought up to date
	made   []time.Time // creation times within the window, oldest first
}

func newRoomQuota(l LimitsConfig) *roomQuota {
	return &roomQuota{max: l.UserRooms, window: l.RoomWindow, rate: float64(l.UserRoomRate),
		burst: float64(l.UserRoomBurst), now: time.Now, users: map[string]*roomUser{}}
}

// reserve counts one room for user, or fails with the limit it hit; undo
// gives the room back when the relay could not make it.
func (q *roomQuota) reserve(user string) (undo func(), err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	q.sweep(now)
	u := q.users[user]
	if u == nil {
		u = &roomUser{tokens: q.burst, filled: now}
		q.users[user] = u
	}
	u.expire(now, q.window)
	u.tokens = min(q.burst, u.tokens+now.Sub(u.filled).Seconds()*q.rate)
	u.filled = now
	if len(u.made) >= q.max {
		// A limit of the user, like the key quota, not an overload of the
		// server: policy_validation_failed.
		return nil, Errorf(ErrTypePolicyValidationFailed,
			"room quota reached: %d rooms created in the last %s (limits.user_rooms); the oldest leaves the count in %s",
			q.max, q.window, u.made[0].Add(q.window).Sub(now).Round(time.Second))
	}
	if u.tokens < 1 {
		wait := time.Duration((1 - u.tokens) / q.rate * float64(time.Second))
		return nil, &Overload{Reason: rejectRoomRate, RetryAfter: wait,
			Msg: fmt.Sprintf("room creation rate limit: at most %d rooms a second after a burst of %d (limits.user_room_rate, user_room_burst), retry later", int(q.rate), int(q.burst))}
	}
	u.tokens--
	u.made = append(u.made, now)
	return func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		for i := len(u.made) - 1; i >= 0; i-- {
			if u.made[i].Equal(now) {
				u.made = append(u.made[:i], u.made[i+1:]...)
				break
			}
		}
		u.tokens = min(q.burst, u.tokens+1)
	}, nil
}

// expire forgets creations older than the window.
func (u *roomUser) expire(now time.Time, window time.Duration) {
	i := 0
	for i < len(u.made) && now.Sub(u.made[i]) >= window {
		i++
	}
	if i > 0 {
		u.made = append(u.made[:0], u.made[i:]...)
	}
}

// sweep drops, once a window, users with no room in it and a full bucket,
// so the map holds only recent creators; q.mu is held.
func (q *roomQuota) sweep(now time.Time) {
	if now.Sub(q.swept) < q.window {
		return
	}
	q.swept = now
	for id, u := range q.users {
		u.expire(now, q.window)
		if len(u.made) == 0 {
			delete(q.users, id)
		}
	}
}
