package relay_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// impostor claims to be `as` but signs with its own key.
type impostor struct {
	as  envelope.Party
	key *envelope.Identity
}

func (i impostor) Public() envelope.Party { return i.as }
func (i impostor) Sign(msg []byte, aux [32]byte) ([64]byte, error) {
	return i.key.Sign(msg, aux)
}

// claimRecorder is a client transport that keeps every seat claim the
// relay accepted through it, as an eavesdropper on the honest parties' path
// would. Only accepted claims are kept: one replayed before the original
// arrives is a race the relay cannot tell from the original (see
// TestSeatClaimReplayRace for what it gains the outsider).
type claimRecorder struct {
	mu     sync.Mutex
	claims []relay.SeatClaim
}

func (r *claimRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.URL.Path, "/seats") || req.Body == nil {
		return http.DefaultTransport.RoundTrip(req)
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	resp, err := http.DefaultTransport.RoundTrip(req)
	var sc relay.SeatClaim
	if err == nil && resp.StatusCode == http.StatusOK && json.Unmarshal(b, &sc) == nil {
		r.mu.Lock()
		r.claims = append(r.claims, sc)
		r.mu.Unlock()
	}
	return resp, err
}

func (r *claimRecorder) all() []relay.SeatClaim {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relay.SeatClaim(nil), r.claims...)
}

func newIdentities(t *testing.T, n int) ([]*envelope.Identity, []envelope.Party) {
	t.Helper()
	ids := make([]*envelope.Identity, n)
	ps := make([]envelope.Party, n)
	for i := range ids {
		id, err := envelope.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		ids[i], ps[i] = id, id.Public()
	}
	return ids, ps
}

func hexOf(p envelope.Party) string { return hex.EncodeToString(p[:]) }

// attackRoom does everything an outsider who learned room can do before
// and while the honest parties (members) meet there, and checks each is
// refused or confined to the outsider's own member sets. It returns a
// squatter seat, still holding a set of its own.
func attackRoom(t *testing.T, addr, room string, members []envelope.Party) *relay.Seat {
	t.Helper()
	ctx := ctxT(t)
	o := newClient(t, addr)
	outs, _ := newIdentities(t, 3)
	msgs := "http://" + addr + "/v1/rooms/" + room + "/messages"

	// No seat: nothing works.
	for _, req := range []struct{ method, url, body string }{
		{"POST", msgs + "?to=", "garbage"},
		{"POST", msgs + "?to=" + hexOf(members[0]), "garbage"},
		{"POST", msgs + "?from=" + hexOf(members[0]) + "&to=", "garbage"},
		{"GET", msgs + "?after=0", ""},
		{"GET", msgs + "?party=" + hexOf(members[1]), ""},
		{"DELETE", "http://" + addr + "/v1/rooms/" + room, ""},
		{"DELETE", "http://" + addr + "/v1/rooms/" + room + "?party=" + hexOf(members[0]), ""},
	} {
		if status, code, _ := rawReq(t, req.method, req.url, req.body); status != 401 || code != relay.CodeSeatRequired {
			t.Fatalf("outsider %s %s: %d %s, want 401 seat_required", req.method, req.url, status, code)
		}
	}
	// A member's seat without the member's key.
	for _, m := range members {
		if _, err := o.TakeSeat(ctx, room, impostor{as: m, key: outs[0]}, members); !errors.Is(err, relay.ErrSeat) {
			t.Fatalf("impostor seat for %s: %v, want ErrSeat", envelope.Short(m), err)
		}
	}
	// Its own key in the honest member set: it is not a member.
	if _, err := o.TakeSeat(ctx, room, outs[0], members); !errors.Is(err, relay.ErrBadRequest) {
		t.Fatalf("outsider in the honest set: %v", err)
	}
	name, err := o.Name(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := relay.NewSeatClaim(outs[0], name, room, append([]envelope.Party{outs[0].Public()}, members...), time.Now().UnixMilli(), [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	var honestOnly []string
	for _, m := range relay.SortMembers(members) {
		honestOnly = append(honestOnly, hexOf(m))
	}
	sc.Members = honestOnly // claims the honest set (its id), signed for another
	if _, err := o.Claim(ctx, room, sc); !errors.Is(err, relay.ErrBadRequest) {
		t.Fatalf("outsider claiming the honest set: %v", err)
	}
	// Seats in sets of its own (its key with the members, its key alone):
	// granted, and useless against the honest set.
	withMembers, err := o.TakeSeat(ctx, room, outs[0], append([]envelope.Party{outs[0].Public()}, members...))
	if err != nil {
		t.Fatalf("outsider's own set: %v", err)
	}
	alone, err := o.TakeSeat(ctx, room, outs[1], []envelope.Party{outs[1].Public()})
	if err != nil {
		t.Fatalf("outsider's own set: %v", err)
	}
	for _, st := range []*relay.Seat{withMembers, alone} {
		if _, err := st.Post(ctx, "", []byte("garbage broadcast")); err != nil {
			t.Fatalf("outsider broadcast in its set: %v", err)
		}
	}
	if _, err := withMembers.Post(ctx, hexOf(members[0]), []byte("garbage to a member")); err != nil {
		t.Fatalf("outsider post in its own set: %v", err) // reaches only a seat of that set, which no member takes
	}
	if _, err := alone.Post(ctx, hexOf(members[0]), []byte("x")); !errors.Is(err, relay.ErrBadRequest) {
		t.Fatalf("post to a member outside the outsider's set: %v", err)
	}
	// Leaving as itself leaves only itself.
	if err := withMembers.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	return alone
}

// TestOutsiderCannotDisturbCeremonies: an outsider knowing the room id
// attacks in every way it can; the honest import and signing in that room
// complete, and leaving closes the room despite the squatters.
func TestOutsiderCannotDisturbCeremonies(t *testing.T) {
	srv, addr := testkit.RelayServer(t)
	rec := &claimRecorder{}
	c := newClient(t, addr, relay.ClientConfig{Transport: rec})
	ids, members := newIdentities(t, 3)
	room := mustRoom(t, c, 3)
	squatter := attackRoom(t, addr, room, members)

	// The outsider keeps broadcasting in its own set and replaying every
	// claim it overhears while the ceremony runs.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var replays, garbage atomic.Int64
	replayer := newClient(t, addr)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if _, err := squatter.Post(ctx, "", []byte{0x51, 0x44}); err == nil {
				garbage.Add(1)
			}
			for _, sc := range rec.all() {
				// Refused as a replay, or, once the ceremony left, as too late.
				if _, err := replayer.Claim(ctx, room, sc); !errors.Is(err, relay.ErrSeat) && !errors.Is(err, relay.ErrRoomExpired) {
					t.Errorf("replayed claim of %s: %v, want ErrSeat", sc.Party[:8], err)
					return
				}
				replays.Add(1)
			}
		}
	}()

	x := new(btcec.ModNScalar)
	x.SetInt(424242)
	xc := *x
	want := schnorrKey(x)
	infos := make([]*ceremony.KeyInfo, 3)
	shares := make([]btcec.ModNScalar, 3)
	errs := make([]error, 3)
	trs := make([]*ceremony.RelaySeat, 3)
	var iw sync.WaitGroup
	for i, id := range ids {
		var others []envelope.Party
		for j, m := range members {
			if j != i {
				others = append(others, m)
			}
		}
		trs[i] = ceremony.RelayTransport(c, room, id, members)
		p := ceremony.ImportParams{Room: room, Identity: id, Others: others, Threshold: 2, Transport: trs[i]}
		if i == 0 {
			p.PrivateKey = &xc
		}
		iw.Add(1)
		go func() {
			defer iw.Done()
			infos[i], errs[i] = ceremony.Import(ctx, p, keepShare{&shares[i]})
		}()
	}
	iw.Wait()
	close(stop)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("party %d import in the attacked room: %v", i, err)
		}
		if infos[i].XOnly() != want {
			t.Fatalf("party %d imported another key", i)
		}
	}
	if replays.Load() == 0 || garbage.Load() == 0 {
		t.Fatalf("the outsider never acted during the ceremony (%d replays, %d posts)", replays.Load(), garbage.Load())
	}
	// Each ceremony leaves the room as it ends (in the background, after
	// answering): closed despite the squatter.
	for deadline := time.Now().Add(30 * time.Second); srv.Stats().RoomsClosedLeft != 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if st := srv.Stats(); st.RoomsClosedLeft != 1 {
		t.Fatalf("room not closed once the honest set left: %+v", st)
	}
	for _, tr := range trs {
		// Harmless: nothing to do for a seat that left (its last post
		// left it), or the relay's answer that the room is closed.
		if err := tr.Leave(ctx); err != nil && !errors.Is(err, relay.ErrRoomExpired) {
			t.Fatalf("leaving again: %v", err)
		}
	}
	if _, err := squatter.Fetch(ctx, 0, 0); !errors.Is(err, relay.ErrRoomExpired) {
		t.Fatalf("squatter after the ceremony: %v", err)
	}

	// Signing with two of the three, in a fresh room attacked the same way;
	// the member set of a signing room is the key's parties.
	signRoom := mustRoom(t, c, 2)
	attackRoom(t, addr, signRoom, members)
	sigs := make([][64]byte, 2)
	var sw sync.WaitGroup
	for j, i := range []int{0, 2} {
		tr := ceremony.RelayTransport(c, signRoom, ids[i], infos[i].Parties)
		sw.Add(1)
		go func() {
			defer sw.Done()
			share := shares[i]
			sigs[j], errs[j] = ceremony.Sign(ctx, ceremony.SignParams{Room: signRoom, Identity: ids[i], Key: infos[i],
				Share: &share, Signers: 2, Msg: []byte("attacked room"), Transport: tr})
		}()
	}
	sw.Wait()
	for j := range 2 {
		if errs[j] != nil {
			t.Fatalf("signer %d in the attacked room: %v", j, errs[j])
		}
	}
	if sigs[0] != sigs[1] {
		t.Fatalf("signers disagree")
	}
}

func schnorrKey(x *btcec.ModNScalar) [32]byte {
	var p btcec.JacobianPoint
	btcec.ScalarBaseMultNonConst(x, &p) // test key, not a secret
	p.ToAffine()
	var out [32]byte
	p.X.PutBytesUnchecked(out[:])
	return out
}

// TestSeatClaimReplay: a claim works once, at the relay and in the room it
// was signed for, within the clock window; newer claims rotate the token.
func TestSeatClaimReplay(t *testing.T) {
	addr := testkit.Relay(t, relay.Config{Name: "relay-a"})
	other := testkit.Relay(t, relay.Config{Name: "relay-b"})
	c := newClient(t, addr)
	ctx := ctxT(t)
	ids, members := newIdentities(t, 2)
	room, room2 := mustRoom(t, c, 2), mustRoom(t, c, 2)
	now := time.Now().UnixMilli()
	sc, err := relay.NewSeatClaim(ids[0], "relay-a", room, members, now, [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Claim(ctx, room, sc)
	if err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if _, err := st.Post(ctx, "", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Claim(ctx, room, sc); !errors.Is(err, relay.ErrSeat) {
		t.Fatalf("replayed claim: %v", err)
	}
	if _, err := c.Claim(ctx, room2, sc); !errors.Is(err, relay.ErrSeat) {
		t.Fatalf("claim used in another room: %v", err)
	}
	oc := newClient(t, other)
	room3 := mustRoom(t, oc, 2)
	sc3, _ := relay.NewSeatClaim(ids[0], "relay-a", room3, members, now, [32]byte{})
	if _, err := oc.Claim(ctx, room3, sc3); !errors.Is(err, relay.ErrSeat) {
		t.Fatalf("claim signed for relay-a used at relay-b: %v", err)
	}
	older, _ := relay.NewSeatClaim(ids[0], "relay-a", room, members, now-1, [32]byte{})
	if _, err := c.Claim(ctx, room, older); !errors.Is(err, relay.ErrSeat) {
		t.Fatalf("older claim: %v", err)
	}
	// The holder re-claims (say its answer was lost): a new token, the old
	// one is void.
	newer, _ := relay.NewSeatClaim(ids[0], "relay-a", room, members, now+1, [32]byte{})
	st2, err := c.Claim(ctx, room, newer)
	if err != nil {
		t.Fatalf("newer claim: %v", err)
	}
	if _, err := st.Post(ctx, "", []byte("old token")); !errors.Is(err, relay.ErrSeat) {
		t.Fatalf("post with the replaced token: %v", err)
	}
	// A seat that left stays left (the other member keeps the room open).
	if _, err := c.TakeSeat(ctx, room, ids[1], members); err != nil {
		t.Fatal(err)
	}
	if err := st2.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TakeSeat(ctx, room, ids[0], members); !errors.Is(err, relay.ErrPartyLeft) {
		t.Fatalf("claim after leaving: %v", err)
	}
}

// frontRunner is a client transport that, before a seat claim goes out,
// lets the outsider present a copy of it first, as an attacker on the path
// that outruns the original would.
type frontRunner struct {
	t     *testing.T
	o     *relay.Client
	room  string
	mu    sync.Mutex
	n     int           // claims to run ahead of
	seats []*relay.Seat // what the copies got the outsider
}

func (f *frontRunner) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/seats") && req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		var sc relay.SeatClaim
		f.mu.Lock()
		if f.n > 0 && json.Unmarshal(b, &sc) == nil {
			f.n--
			st, err := f.o.Claim(req.Context(), f.room, sc)
			if err != nil {
				f.t.Errorf("front-run copy of a fresh claim: %v", err)
			} else {
				f.seats = append(f.seats, st)
			}
		}
		f.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestSeatClaimReplayRace: an outsider who presents a copy of a member's
// claim before the member's own arrives gets a token, but the member still
// takes its seat (re-signing a newer claim), which voids that token; the
// copy and the member's first claim are refused from then on.
func TestSeatClaimReplayRace(t *testing.T) {
	addr := testkit.Relay(t, relay.Config{})
	ctx := ctxT(t)
	ids, members := newIdentities(t, 2)
	room := mustRoom(t, newClient(t, addr), 2)
	o := newClient(t, addr)
	fr := &frontRunner{t: t, o: o, room: room, n: 2} // outruns the first claim and the re-signed one
	c := newClient(t, addr, relay.ClientConfig{Transport: fr})
	if _, err := newClient(t, addr).TakeSeat(ctx, room, ids[1], members); err != nil {
		t.Fatal(err)
	}
	st, err := c.TakeSeat(ctx, room, ids[0], members)
	if err != nil {
		t.Fatalf("member whose claims were replayed ahead of it: %v", err)
	}
	if len(fr.seats) != 2 {
		t.Fatalf("the outsider ran ahead of %d claims, want 2", len(fr.seats))
	}
	if _, err := st.Post(ctx, hexOf(members[1]), []byte("hi")); err != nil {
		t.Fatalf("member posting from its seat: %v", err)
	}
	for i, os := range fr.seats {
		if _, err := os.Post(ctx, hexOf(members[1]), []byte("as the member")); !errors.Is(err, relay.ErrSeat) {
			t.Fatalf("outsider posting with token %d of the copied claims: %v, want ErrSeat", i, err)
		}
		if _, err := os.Fetch(ctx, 0, 0); !errors.Is(err, relay.ErrSeat) {
			t.Fatalf("outsider fetching with token %d of the copied claims: %v, want ErrSeat", i, err)
		}
		if err := os.Leave(ctx); !errors.Is(err, relay.ErrSeat) {
			t.Fatalf("outsider leaving with token %d of the copied claims: %v, want ErrSeat", i, err)
		}
	}
	if _, err := st.Fetch(ctx, 0, 0); err != nil {
		t.Fatalf("member fetching after the outsider's attempts: %v", err)
	}
}

// TestClaimAnswersRoomSize: a claim's answer gives the room's size beside
// the seats its member set holds, so a signer needs no room-info request.
func TestClaimAnswersRoomSize(t *testing.T) {
	c := newClient(t, testkit.Relay(t))
	ids, members := newIdentities(t, 2)
	room := mustRoom(t, c, 3)
	st, err := c.TakeSeat(ctxT(t), room, ids[0], members)
	if err != nil {
		t.Fatal(err)
	}
	if st.Seats != 2 || st.Size != 3 {
		t.Fatalf("seats %d, size %d; want 2 and 3", st.Seats, st.Size)
	}
}

// TestMemberSetsIsolated: seats that declared different member sets never
// see each other's envelopes; a set holds at most the room's size seats and
// a room at most MaxSetsPerRoom sets.
func TestMemberSetsIsolated(t *testing.T) {
	addr := testkit.Relay(t, relay.Config{MaxSetsPerRoom: 2})
	c := newClient(t, addr)
	ctx := ctxT(t)
	ids, members := newIdentities(t, 4)
	room := mustRoom(t, c, 2)
	a, err := c.TakeSeat(ctx, room, ids[0], members[:2])
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.TakeSeat(ctx, room, ids[1], members[:2])
	if err != nil {
		t.Fatal(err)
	}
	x, err := c.TakeSeat(ctx, room, ids[0], members[:3]) // the same key in another set
	if err != nil {
		t.Fatal(err)
	}
	if a.Set == x.Set || a.Set != b.Set || a.Seats != 2 {
		t.Fatalf("sets: a %s b %s x %s, seats %d", a.Set[:8], b.Set[:8], x.Set[:8], a.Seats)
	}
	if _, err := c.TakeSeat(ctx, room, ids[0], members[:4]); !errors.Is(err, relay.ErrRoomFull) {
		t.Fatalf("third set with MaxSetsPerRoom 2: %v", err)
	}
	if _, err := x.Post(ctx, "", []byte("other set")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Post(ctx, b.Party, []byte("for b")); err != nil {
		t.Fatal(err)
	}
	got, err := b.Fetch(ctx, 0, 0)
	if err != nil || len(got) != 1 || string(got[0].Body) != "for b" || got[0].Seq != 1 {
		t.Fatalf("b got %v %+v", err, got)
	}
	if _, err := c.TakeSeat(ctx, room, ids[2], members[:3]); err != nil {
		t.Fatalf("second seat of the 3-member set: %v", err)
	}
	if _, err := c.TakeSeat(ctx, room, ids[1], members[:3]); !errors.Is(err, relay.ErrRoomFull) {
		t.Fatalf("third seat in a room of 2: %v", err)
	}
}

// keepShare is the ceremony's durable store in these tests: it keeps the
// share in memory.
type keepShare struct{ share *btcec.ModNScalar }

func (k keepShare) Prepare(ks *ceremony.KeyShare, _ *ceremony.RecoveryData) error {
	*k.share = ks.Share
	return nil
}
func (keepShare) Certified(*ceremony.KeyInfo, *ceremony.RecoveryData) error { return nil }
func (keepShare) Discard(*ceremony.KeyInfo) error                           { return nil }
func (keepShare) Refused(*ceremony.KeyInfo, envelope.Party) error           { return nil }
