package ceremony

import (
	"errors"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/relay"
)

// refuseAfterSigning and refuseBeforeSigning are where a Byzantine member
// puts its refusal (testkit.Refuser): in place of its transcript
// signature, after the refused party signed; or in place of its prepared
// announcement, before.
var (
	refuseAfterSigning  = testkit.RefuserRounds{Replace: roundCertify, Last: roundCert, Signature: roundCertify, Refuse: roundRefuse}
	refuseBeforeSigning = testkit.RefuserRounds{Replace: roundPrepared, Last: roundCert, Signature: roundCertify, Refuse: roundRefuse}
)

// dropCertificates is a relay that passes no certificate on, so a party
// that lacks a signature cannot complete the key from a peer's.
func dropCertificates(room, from, to string, body []byte) ([]byte, bool) {
	e, err := envelope.Unmarshal(body)
	return body, err == nil && e.Round == roundCert
}

// equivocationRun is one certified ceremony of n parties in which party
// cheat refuses to party victim and signs for the others; it returns each
// party's durable record and answer.
type equivocationRun func(t *testing.T, addr string, cheat, victim int, wrap func(Transport, *envelope.Identity, []envelope.Party, envelope.Party) Transport) ([]*memDurable, []error, func(i, from int))

// TestEquivocatingRefusal: a member sends its transcript signature to
// some parties and a signed refusal to another, after that party signed.
// In every certified ceremony the refused party never discards: with an
// honest relay a peer's certificate makes it ready at once; with a relay
// that passes no certificate on it stays pending, names the refuser
// (Refused, refused_by), and a peer's recovery data makes it ready.
func TestEquivocatingRefusal(t *testing.T) {
	const n, thr, cheat, victim = 3, 2, 2, 1
	kinds := map[string]equivocationRun{
		"import":        equivocateImport,
		"dealer import": equivocateDeal,
		"keygen":        equivocateKeygen,
		"refresh":       equivocateRefresh,
		"reshare":       equivocateReshare,
	}
	for name, run := range kinds {
		for _, relayDrops := range []bool{false, true} {
			sub := name + "/honest relay"
			if relayDrops {
				sub = name + "/relay drops certificates"
			}
			t.Run(sub, func(t *testing.T) {
				t.Parallel() // the refused party waits out refusalGrace
				var addr string
				if relayDrops {
					addr = testkit.Relay(t, relay.Config{Intercept: dropCertificates})
				} else {
					addr = testkit.Relay(t)
				}
				var r *testkit.Refuser
				wrap := func(tr Transport, id *envelope.Identity, seats []envelope.Party, refuse envelope.Party) Transport {
					r = testkit.NewRefuser(tr, id, seats, refuse, refuseAfterSigning)
					return r
				}
				ds, errs, recoverVictim := run(t, addr, cheat, victim, wrap)
				if r == nil || !r.Refused() {
					t.Fatal("the cheat never sent its refusal")
				}
				for i, d := range ds {
					if d.discarded != 0 {
						t.Errorf("party %d discarded its prepared share", i)
					}
				}
				for _, i := range []int{0, cheat} {
					if errs[i] != nil || ds[i].state() != "ready" {
						t.Fatalf("party %d: %v (%s)", i, errs[i], ds[i].state())
					}
				}
				if !relayDrops {
					// An honest peer passed its certificate on within the grace.
					if errs[victim] != nil || ds[victim].state() != "ready" {
						t.Fatalf("refused party: %v (%s), want ready from a peer's certificate", errs[victim], ds[victim].state())
					}
					return
				}
				var ae *AbortError
				if !errors.As(errs[victim], &ae) || !ae.Refused || !errors.Is(ae, ErrPending) || ds[victim].state() != "pending" {
					t.Fatalf("refused party: %v (%s), want pending on a refusal", errs[victim], ds[victim].state())
				}
				if cheat := r.Identity().Public(); ae.ReportedBy != cheat || ds[victim].refusedBy != cheat {
					t.Errorf("refused party names %x / %x, want the cheat %x", ae.ReportedBy[:4], ds[victim].refusedBy[:4], cheat[:4])
				}
				recoverVictim(victim, 0)
				if s := ds[victim].state(); s != "ready" {
					t.Fatalf("refused party after recovery: %s", s)
				}
			})
		}
	}
}

func durables(out []*importOutcome) ([]*memDurable, []error) {
	ds, errs := make([]*memDurable, len(out)), make([]error, len(out))
	for i, o := range out {
		ds[i], errs[i] = &o.memDurable, o.err
	}
	return ds, errs
}

func equivocateImport(t *testing.T, addr string, cheat, victim int, wrap func(Transport, *envelope.Identity, []envelope.Party, envelope.Party) Transport) ([]*memDurable, []error, func(i, from int)) {
	q := newQuorum(t, addr, 3)
	out := q.runImport(randomScalar(t), 0, 2, slow*20*time.Second, func(i int, p *ImportParams) {
		if i == cheat {
			p.Transport = wrap(p.Transport, q.ids[i], q.parties(), q.ids[victim].Public())
		}
	}, nil)
	ds, errs := durables(out)
	return ds, errs, func(i, from int) { recoverFrom(t, q, out, i, from) }
}

func equivocateDeal(t *testing.T, addr string, cheat, victim int, wrap func(Transport, *envelope.Identity, []envelope.Party, envelope.Party) Transport) ([]*memDurable, []error, func(i, from int)) {
	q := newQuorum(t, addr, 3)
	d, out, _ := q.runDeal(randomScalar(t), 2, slow*20*time.Second, envelope.Party{}, func(i int, p *ImportParams, seated []envelope.Party) {
		if i == cheat {
			p.Transport = wrap(p.Transport, q.ids[i], seated, q.ids[victim].Public())
		}
	})
	if d.err != nil || d.cert == nil {
		t.Errorf("the dealer: %v, want the certificate", d.err)
	}
	ds, errs := durables(out)
	return ds, errs, func(i, from int) { recoverFrom(t, q, out, i, from) }
}

func equivocateKeygen(t *testing.T, addr string, cheat, victim int, wrap func(Transport, *envelope.Identity, []envelope.Party, envelope.Party) Transport) ([]*memDurable, []error, func(i, from int)) {
	q := newQuorum(t, addr, 3)
	out := q.runKeygen(2, slow*20*time.Second, func(i int, p *KeygenParams) {
		if i == cheat {
			p.Transport = wrap(p.Transport, q.ids[i], q.parties(), q.ids[victim].Public())
		}
	}, nil, nil)
	ds, errs := durables(out)
	return ds, errs, func(i, from int) { recoverFrom(t, q, out, i, from) }
}

func redealDurables(out []*redealOutcome) ([]*memDurable, []error) {
	ds, errs := make([]*memDurable, len(out)), make([]error, len(out))
	for i, o := range out {
		ds[i], errs[i] = &o.memDurable, o.err
	}
	return ds, errs
}

// recoverRedealFrom makes out[i] ready from out[from]'s recovery data, with
// the old key and share when the ceremony is a refresh.
func recoverRedealFrom(t *testing.T, out []*redealOutcome, i, from int, old *KeyInfo, oldShare *btcec.ModNScalar) {
	t.Helper()
	data := out[from].rd.Marshal()
	var ks *KeyShare
	var rd *RecoveryData
	var err error
	if old != nil {
		ks, rd, err = RecoverRefresh(out[i].id, data, old, oldShare)
	} else {
		ks, rd, err = Recover(out[i].id, data)
	}
	if err != nil {
		t.Fatalf("party %d recovering from party %d: %v", i, from, err)
	}
	defer ks.Share.Zero()
	if !ks.Share.Equals(out[i].share) {
		t.Fatalf("party %d recovered another share than it prepared", i)
	}
	if err := out[i].Certified(&ks.KeyInfo, rd); err != nil {
		t.Fatal(err)
	}
}

func equivocateRefresh(t *testing.T, addr string, cheat, victim int, wrap func(Transport, *envelope.Identity, []envelope.Party, envelope.Party) Transport) ([]*memDurable, []error, func(i, from int)) {
	c, err := relay.NewClient(addr, relay.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	_, hs := dealtKey(t, 2, 3)
	out := runRedeals(t, c, refreshRuns(hs, func(i int, p *RefreshParams) {
		if i == cheat {
			p.Transport = wrap(p.Transport, hs[i].id, hs[i].info.Parties, hs[victim].id.Public())
		}
	}), slow*20*time.Second, nil)
	ds, errs := redealDurables(out)
	return ds, errs, func(i, from int) { recoverRedealFrom(t, out, i, from, hs[i].info, hs[i].share) }
}

func equivocateReshare(t *testing.T, addr string, cheat, victim int, wrap func(Transport, *envelope.Identity, []envelope.Party, envelope.Party) Transport) ([]*memDurable, []error, func(i, from int)) {
	c, err := relay.NewClient(addr, relay.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	_, old := dealtKey(t, 2, 3)
	set := []*envelope.Identity{old[0].id, old[1].id, newIdentity(t)}
	var members []envelope.Party
	for _, id := range set {
		members = append(members, id.Public())
	}
	out := runRedeals(t, c, reshareRuns(old, set, 2, func(i int, p *ReshareParams) {
		if i == cheat {
			p.Transport = wrap(p.Transport, set[i], members, set[victim].Public())
		}
	}), slow*20*time.Second, nil)
	ds, errs := redealDurables(out)
	return ds, errs, func(i, from int) { recoverRedealFrom(t, out, i, from, nil, nil) }
}

// TestRefusalBeforeSigningDiscards: a member that refuses to a party in
// place of its prepared announcement (and announces to the others) keeps
// that party from signing; with its own signature never made, no
// certificate can include it, so that party discards, while the parties
// that did sign keep their pending shares and name who refused.
func TestRefusalBeforeSigningDiscards(t *testing.T) {
	const cheat, victim = 2, 1
	q := newQuorum(t, testkit.Relay(t), 3)
	out := q.runImport(randomScalar(t), 0, 2, slow*4*time.Second, func(i int, p *ImportParams) {
		if i == cheat {
			p.Transport = testkit.NewRefuser(p.Transport, q.ids[i], q.parties(), q.ids[victim].Public(), refuseBeforeSigning)
		}
	}, nil)
	for i, o := range out {
		if o.err == nil {
			t.Errorf("party %d answered success", i)
		}
	}
	var ae *AbortError
	if !errors.As(out[victim].err, &ae) || !ae.Refused || ae.ReportedBy != q.ids[cheat].Public() || errors.Is(ae, ErrPending) {
		t.Errorf("victim: %v, want the cheat's refusal, not pending", out[victim].err)
	}
	if out[victim].discarded != 1 || out[victim].state() != "none" {
		t.Errorf("victim: discarded %d, holds %s; want its prepared share discarded", out[victim].discarded, out[victim].state())
	}
	// The others either signed before the victim's refusal (it never
	// signed) reached them, which is no proof for them, so they keep a
	// pending share noting who refused; or it reached them first, and they
	// discard as the victim did. Never ready.
	for _, i := range []int{0, cheat} {
		switch out[i].state() {
		case "pending":
			if out[i].refusedBy != q.ids[victim].Public() || !errors.Is(out[i].err, ErrPending) {
				t.Errorf("party %d: pending, refused_by %x (err %v); want the victim named", i, out[i].refusedBy[:4], out[i].err)
			}
		case "none":
			if out[i].discarded != 1 || errors.Is(out[i].err, ErrPending) {
				t.Errorf("party %d: holds nothing, discarded %d (err %v)", i, out[i].discarded, out[i].err)
			}
		default:
			t.Errorf("party %d holds %s", i, out[i].state())
		}
	}
}
