package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Quorum drives ceremonies across several daemons, one Client per party,
// as an operator (or quorumctl) does from the outside: key slots on every
// daemon, keygen_ids exchanged, a room, then every party's call at once
// (each blocks until the ceremony ends), and the answers cross-checked.
type Quorum struct {
	Parties []*Client
	// RelayAddress is sent as every ceremony call's relay_address ("" =
	// each daemon's default relay; it must be on the users' allowlist).
	RelayAddress string
	// Room makes ceremony rooms; nil = POST /create-room on the daemon of
	// the ceremony's first party (an import's importer).
	Room RoomMaker
	// Log receives one human line per step; nil is silent.
	Log func(format string, args ...any)
}

func (q *Quorum) step(format string, args ...any) {
	if q.Log != nil {
		q.Log(format, args...)
	}
}

// room makes a room for size parties with q.Room, or on party idx's daemon.
func (q *Quorum) room(ctx context.Context, idx, size int) (string, string, error) {
	mk := q.Room
	if mk == nil {
		mk = DaemonRoom(q.Parties[idx], idx)
	}
	return mk(ctx, size)
}

// newRoom makes a room of size on party idx's side (as room) and reports
// it as a step.
func (q *Quorum) newRoom(ctx context.Context, idx, size int) (string, error) {
	room, where, err := q.room(ctx, idx, size)
	if err != nil {
		return "", fmt.Errorf("creating the room %s: %w", where, err)
	}
	q.step("room %s (size %d) created %s", room, size, where)
	return room, nil
}

// bases lists the parties' base URLs.
func (q *Quorum) bases() []string {
	out := make([]string, len(q.Parties))
	for i, c := range q.Parties {
		out[i] = c.Base()
	}
	return out
}

// slots makes a key slot on each of the parties (indexes into q.Parties)
// at once; the keygen_ids must be distinct.
func (q *Quorum) slots(ctx context.Context, parties []int, what string) ([]KeySlot, error) {
	slots := make([]KeySlot, len(parties))
	errs := parallel(ctx, len(parties), func(ctx context.Context, k int) error {
		i := parties[k]
		s, err := q.Parties[i].CreateKey(ctx)
		if err != nil {
			return err
		}
		slots[k] = s
		q.step("daemon %d: %skey slot %s, keygen_id %s", i, what, s.KeyID, s.KeygenID)
		return nil
	})
	if k, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("creating the key slot on daemon %d: %w", parties[k], err)
	}
	for k, s := range slots {
		for j := range k {
			if slots[j].KeygenID == s.KeygenID {
				return nil, fmt.Errorf("daemons %d and %d answered the same keygen_id: %w", parties[j], parties[k], ErrMismatch)
			}
		}
	}
	return slots, nil
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// others lists every keygen_id but the i-th.
func others(ids []string, i int) []string {
	out := make([]string, 0, len(ids)-1)
	for j, k := range ids {
		if j != i {
			out = append(out, k)
		}
	}
	return out
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ImportOptions shape an import.
type ImportOptions struct {
	Threshold int
	// Importer is the index of the party holding the private key.
	Importer int
	// Encrypt sends the key HPKE-encrypted to the importer daemon's import
	// key (encrypted_private_key); EncryptKEM picks its KEM ("" = default).
	Encrypt    bool
	EncryptKEM string
	// Dealer, when set, deals the key from this process: every daemon is a
	// recipient (Importer is ignored) and the key never leaves the process.
	// Its relay makes the room; Quorum.RelayAddress must name that relay.
	Dealer *LocalDealer
}

// ImportResult is what a completed import reports.
type ImportResult struct {
	Threshold int           `json:"threshold"`
	N         int           `json:"n"`
	Importer  int           `json:"importer"` // -1: dealt by a LocalDealer
	Daemons   []string      `json:"daemons"`
	RoomUUID  string        `json:"room_uuid"`
	KeyIDs    []string      `json:"key_ids"`
	KeygenIDs []string      `json:"keygen_ids"`
	Pubkey    string        `json:"pubkey"`
	Timing    ImportTimings `json:"timing_ms"`
}

// ImportTimings are an import's phases (in milliseconds in JSON).
type ImportTimings struct {
	Slots    time.Duration `json:"-"`
	Room     time.Duration `json:"-"`
	Ceremony time.Duration `json:"-"`
	SlotsMS  float64       `json:"slots"`
	RoomMS   float64       `json:"room"`
	CerMS    float64       `json:"ceremony"`
}

func role(i, importer, n int) string {
	switch i {
	case importer:
		return "importer"
	case n:
		return "local dealer"
	}
	return "recipient"
}

// Import imports privateKey (32 bytes, 0 < x < n) T-of-N across the
// parties (DESIGN §3): a key slot on every daemon, a room of size N (on the
// importer's daemon unless q.Room or a dealer makes it), then the importer
// and every recipient at once. Every daemon must answer the same pubkey,
// the private key's. privateKey stays the caller's to wipe; every copy the
// client makes is zeroed.
func (q *Quorum) Import(ctx context.Context, privateKey []byte, o ImportOptions) (*ImportResult, error) {
	n := len(q.Parties)
	if n < 2 {
		return nil, usagef("an import needs at least 2 daemons, got %d", n)
	}
	if o.Threshold < 1 || o.Threshold > n {
		return nil, usagef("threshold must satisfy 1 <= t <= N = %d, got %d", n, o.Threshold)
	}
	if o.Dealer != nil {
		o.Importer = -1 // every daemon is a recipient
	} else if o.Importer < 0 || o.Importer >= n {
		return nil, usagef("importer index %d: want 0..%d", o.Importer, n-1)
	}
	if privateKey == nil {
		return nil, usagef("no private key")
	}
	want, err := XOnlyPubkey(privateKey)
	if err != nil {
		return nil, err
	}
	res := &ImportResult{Threshold: o.Threshold, N: n, Importer: o.Importer, Daemons: q.bases(),
		KeyIDs: make([]string, n), KeygenIDs: make([]string, n)}

	// 1. A key slot (and ceremony identity) on every daemon.
	start := time.Now()
	slots, err := q.slots(ctx, indexes(n), "")
	if err != nil {
		return nil, err
	}
	res.Timing.Slots = time.Since(start)
	for i, s := range slots {
		res.KeyIDs[i], res.KeygenIDs[i] = s.KeyID, s.KeygenID
	}

	// 2. The room, made by the importer's daemon on its default relay (by
	// a local dealer on its relay, with a seat for the dealer).
	t0 := time.Now()
	var room, where string
	if o.Dealer != nil {
		room, where, err = o.Dealer.room(ctx, n)
	} else {
		room, where, err = q.room(ctx, o.Importer, n)
	}
	if err != nil {
		return nil, fmt.Errorf("creating the room %s: %w", where, err)
	}
	res.RoomUUID = room
	res.Timing.Room = time.Since(t0)
	q.step("room %s for %d parties created %s", room, n, where)

	// 3. Everyone at once: each call returns only when the ceremony ends
	// (a local dealer, "party" n, once every daemon prepared).
	t0 = time.Now()
	pubs := make([][]byte, n)
	callers := n
	if o.Dealer != nil {
		callers++
	}
	errs := parallel(ctx, callers, func(ctx context.Context, i int) error {
		if i == n {
			if err := o.Dealer.deal(ctx, room, res.KeygenIDs, o.Threshold, privateKey); err != nil {
				q.step("local dealer failed: %v", err)
				return err
			}
			q.step("local dealer: dealt, every daemon prepared; its copy of the private key is wiped")
			return nil
		}
		req := ImportRequest{RoomUUID: room, KeyID: slots[i].KeyID, Threshold: o.Threshold,
			RelayAddress: q.RelayAddress, OthersKeygenIDs: others(res.KeygenIDs, i)}
		if o.Dealer != nil {
			req.DealerID = o.Dealer.ID()
		}
		var pk []byte
		var err error
		switch {
		case i == o.Importer && o.Encrypt:
			pk, err = q.Parties[i].ImportKeyEncrypted(ctx, req, slots[i].KeygenID, o.EncryptKEM, privateKey)
		case i == o.Importer:
			pk, err = q.Parties[i].ImportKey(ctx, req, privateKey)
		default:
			pk, err = q.Parties[i].ImportRecipient(ctx, req)
		}
		if err != nil {
			if errors.Is(err, context.Canceled) {
				q.step("daemon %d: %s call cancelled (another party failed)", i, role(i, o.Importer, n))
			} else {
				q.step("daemon %d: %s failed: %v", i, role(i, o.Importer, n), err)
			}
			return err
		}
		pubs[i] = pk
		q.step("daemon %d: %s done, pubkey %x", i, role(i, o.Importer, n), pk)
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("import ceremony, daemon %d (%s): %w", i, role(i, o.Importer, n), err)
	}
	res.Timing.Ceremony = time.Since(t0)
	res.Timing.SlotsMS, res.Timing.RoomMS, res.Timing.CerMS = msf(res.Timing.Slots), msf(res.Timing.Room), msf(res.Timing.Ceremony)
	for i, pk := range pubs {
		if !bytes.Equal(pk, pubs[0]) {
			return nil, fmt.Errorf("daemon %d answered pubkey %x, daemon 0 %x: %w", i, pk, pubs[0], ErrMismatch)
		}
	}
	if !bytes.Equal(pubs[0], want[:]) {
		return nil, fmt.Errorf("the quorum's pubkey %x is not the private key's %x: %w", pubs[0], want, ErrMismatch)
	}
	res.Pubkey = hex.EncodeToString(pubs[0])
	q.step("all %d daemons agree; pubkey matches the private key", n)
	return res, nil
}

// KeygenResult is what a completed keygen reports.
type KeygenResult struct {
	Threshold int      `json:"threshold"`
	N         int      `json:"n"`
	Daemons   []string `json:"daemons"`
	RoomUUID  string   `json:"room_uuid"`
	KeyIDs    []string `json:"key_ids"`
	KeygenIDs []string `json:"keygen_ids"`
	Pubkey    string   `json:"pubkey"`
	Ms        float64  `json:"ceremony_ms"`
}

// Keygen generates a fresh key T-of-N across the parties (ChillDKG, no
// dealer): a key slot on every daemon, a room (on party 0's daemon unless
// q.Room makes it), then every daemon's keygen call at once; all must
// answer the same pubkey.
func (q *Quorum) Keygen(ctx context.Context, threshold int) (*KeygenResult, error) {
	n := len(q.Parties)
	if n < 2 {
		return nil, usagef("a keygen needs at least 2 daemons, got %d", n)
	}
	if threshold < 1 || threshold > n {
		return nil, usagef("threshold must satisfy 1 <= t <= N = %d, got %d", n, threshold)
	}
	res := &KeygenResult{Threshold: threshold, N: n, Daemons: q.bases(), KeyIDs: make([]string, n), KeygenIDs: make([]string, n)}
	slots, err := q.slots(ctx, indexes(n), "")
	if err != nil {
		return nil, err
	}
	for i, s := range slots {
		res.KeyIDs[i], res.KeygenIDs[i] = s.KeyID, s.KeygenID
	}
	room, err := q.newRoom(ctx, 0, n)
	if err != nil {
		return nil, err
	}
	res.RoomUUID = room
	t0 := time.Now()
	pubs := make([][]byte, n)
	errs := parallel(ctx, n, func(ctx context.Context, i int) error {
		req := ImportRequest{RoomUUID: room, KeyID: slots[i].KeyID, Threshold: threshold,
			RelayAddress: q.RelayAddress, OthersKeygenIDs: others(res.KeygenIDs, i)}
		pk, err := q.Parties[i].Keygen(ctx, req)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				q.step("daemon %d: keygen failed: %v", i, err)
			}
			return err
		}
		pubs[i] = pk
		q.step("daemon %d: keygen done, pubkey %x", i, pk)
		return nil
	})
	if i, err := firstError(errs); err != nil {
		return nil, fmt.Errorf("keygen ceremony, daemon %d: %w", i, err)
	}
	res.Ms = msf(time.Since(t0))
	for i, pk := range pubs {
		if !bytes.Equal(pk, pubs[0]) {
			return nil, fmt.Errorf("daemon %d answered pubkey %x, daemon 0 %x: %w", i, pk, pubs[0], ErrMismatch)
		}
	}
	res.Pubkey = hex.EncodeToString(pubs[0])
	q.step("all %d daemons agree on the generated key", n)
	return res, nil
}
