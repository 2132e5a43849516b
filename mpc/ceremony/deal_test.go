package ceremony

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/vss"
)

// TestOpenDealPublishedShares: a deal carrying its public shares opens to
// the dealt share and the public shares, checked by computing them (small
// t) or by one random combination (large t); the same deal without them (the
// format of older keys' recovery data) opens to the same outcome; a deal
// whose published shares were swapped, or replaced by another polynomial's,
// aborts naming the dealer.
func TestOpenDealPublishedShares(t *testing.T) {
	for _, s := range []struct{ t, n int }{{2, 3}, {3, 4}, {40, 60}} {
		t.Run(fmt.Sprintf("%d-of-%d", s.t, s.n), func(t *testing.T) {
			ids := make([]*envelope.Identity, s.n)
			parties := make([]envelope.Party, s.n)
			for i := range ids {
				ids[i] = newIdentity(t)
				parties[i] = ids[i].Public()
			}
			envelope.SortParties(parties)
			dealer := ids[0]
			me := ids[1]
			myID := slices.Index(parties, me.Public())
			session := importSession("room", parties, s.t, envelope.Broadcast)
			d, err := vss.Deal(randomScalar(t), s.t, s.n, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Zero()
			payload, err := dealPayload(dealer, session, parties, d, nil)
			if err != nil {
				t.Fatal(err)
			}
			open := func(payload []byte) (*KeyShare, error) {
				raw, err := envelope.NewSender(dealer, envelope.KindImport, session).Seal(roundDeal, envelope.Broadcast, payload, false)
				if err != nil {
					t.Fatal(err)
				}
				e, err := envelope.Unmarshal(raw)
				if err != nil {
					t.Fatal(err)
				}
				return openDeal(me, session, parties, s.t, e)
			}
			ks, err := open(payload)
			if err != nil {
				t.Fatalf("deal with public shares: %v", err)
			}
			if !ks.Share.Equals(&d.Shares[myID]) || ks.ID != myID {
				t.Fatal("opened another share")
			}
			want, _ := vss.PublicShares(d.Commitments, s.n)
			for j := range want {
				if ks.PubShares[j] != [33]byte(want[j].SerializeCompressed()) {
					t.Fatalf("public share %d differs", j)
				}
			}
			pubsAt := 1 + 33*s.t
			legacy := slices.Concat(payload[:pubsAt], payload[pubsAt+33*s.n:])
			old, err := open(legacy)
			if err != nil {
				t.Fatalf("deal without public shares: %v", err)
			}
			if old.PubShares[s.n-1] != ks.PubShares[s.n-1] || !old.Share.Equals(&ks.Share) {
				t.Fatal("the two formats disagree")
			}
			swapped := slices.Clone(payload)
			copy(swapped[pubsAt:], payload[pubsAt+33:pubsAt+66])
			copy(swapped[pubsAt+33:], payload[pubsAt:pubsAt+33])
			other, err := vss.Deal(randomScalar(t), s.t, s.n, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Zero()
			otherPubs, _ := vss.PublicShares(other.Commitments, s.n)
			foreign := slices.Clone(payload)
			for j, P := range otherPubs {
				copy(foreign[pubsAt+33*j:], P.SerializeCompressed())
			}
			for name, bad := range map[string][]byte{"swapped": swapped, "another polynomial's": foreign} {
				_, err := open(bad)
				var ae *AbortError
				if !errors.As(err, &ae) || !errors.Is(err, ErrProtocol) || ae.Culprit != dealer.Public() {
					t.Fatalf("%s public shares: %v", name, err)
				}
			}
		})
	}
}

// TestCheckCertSkipsKnown: a certificate is accepted when every signature
// this party has not verified itself is valid; a bad signature is refused
// whether or not this party holds a (different) valid one for that member.
func TestCheckCertSkipsKnown(t *testing.T) {
	const n = 4
	ids := make([]*envelope.Identity, n)
	members := make([]envelope.Party, n)
	for i := range ids {
		ids[i] = newIdentity(t)
	}
	slices.SortFunc(ids, func(a, b *envelope.Identity) int { return compareParties(a.Public(), b.Public()) })
	for i, id := range ids {
		members[i] = id.Public()
	}
	pt := newParty(ids[0], envelope.KindImport, [32]byte{1}, members, nil)
	transcript := [32]byte{2}
	good := make(Certificate, n)
	for i, id := range ids {
		sig, err := signTranscript(id, transcript)
		if err != nil {
			t.Fatal(err)
		}
		good[i] = sig
	}
	known, have := slices.Clone(good), []bool{true, true, false, false}
	if err := pt.checkCert(good, transcript, known, have); err != nil {
		t.Fatalf("valid certificate: %v", err)
	}
	for _, i := range []int{1, 3} { // a known member's, an unknown member's
		bad := slices.Clone(good)
		bad[i][63] ^= 1
		if err := pt.checkCert(bad, transcript, known, have); err == nil {
			t.Fatalf("a bad signature %d passed", i)
		}
	}
}
