package ceremony

import (
	"fmt"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/vss"
)

// benchCases are the sizes the lifecycle benchmarks report.
var benchCases = []struct{ t, n int }{{2, 3}, {7, 10}}

// BenchmarkRedealParty measures one party's compute in a refresh (all n
// deal) and in a reshare to the same t-of-n (t holders deal): dealing its
// own contribution and sealing the boxes, then checking every deal (open
// its box, verify its sub-share, check the old key and C_0) and combining
// them into its share and the new public shares. No transport and no
// certify signatures (a few BIP340 signatures, measured with import).
func BenchmarkRedealParty(b *testing.B) {
	for _, mode := range []string{"refresh", "reshare"} {
		for _, tc := range benchCases {
			b.Run(fmt.Sprintf("%s/%d-of-%d", mode, tc.t, tc.n), func(b *testing.B) {
				_, hs := dealtKey(b, tc.t, tc.n)
				kind, dealers := envelope.KindRefresh, hs
				if mode == "reshare" {
					kind, dealers = envelope.KindReshare, hs[:tc.t]
				}
				set := hs[0].info.Parties
				if mode == "reshare" {
					set = nil
					for _, h := range dealers {
						set = append(set, h.id.Public())
					}
					for range tc.n - tc.t {
						set = append(set, newIdentity(b).Public())
					}
					envelope.SortParties(set)
				}
				redealer := func(h *holder) *redeal {
					r := redealFor(kind, "bench", tc.t, set, h.info)
					r.share = h.share
					return r
				}
				// Every other dealer's deal, sealed once.
				me := dealers[0]
				var others []*envelope.Envelope
				for _, h := range dealers[1:] {
					raw := sealDeal(b, redealer(h), h)
					e, err := envelope.Unmarshal(raw)
					if err != nil {
						b.Fatal(err)
					}
					others = append(others, e)
				}
				b.ResetTimer()
				for b.Loop() {
					r := redealer(me)
					own, err := envelope.Unmarshal(sealDeal(b, r, me))
					if err != nil {
						b.Fatal(err)
					}
					deals := append([]*envelope.Envelope{own}, others...)
					r.opened = map[envelope.Party]*btcec.ModNScalar{}
					for _, e := range deals[1:] {
						s, err := r.checkDeal(me.id, e)
						if err != nil {
							b.Fatal(err)
						}
						r.opened[e.From] = s
					}
					ordered := make([]*envelope.Envelope, 0, len(deals))
					for _, p := range r.dealers(r.old) {
						for _, e := range deals {
							if e.From == p {
								ordered = append(ordered, e)
							}
						}
					}
					ks, err := r.combine(me.id, ordered)
					if err != nil {
						b.Fatal(err)
					}
					ks.Share.Zero()
				}
			})
		}
	}
}

// sealDeal is a dealer's deal round without a transport.
func sealDeal(tb testing.TB, r *redeal, h *holder) []byte {
	var d *vss.Dealing
	var err error
	if r.zero {
		d, err = vss.DealZero(r.t, len(r.parties), nil)
	} else {
		var l *btcec.ModNScalar
		if l, err = vss.Lagrange(oldIDs(r.old, r.dealers(r.old)), r.old.IDOf(h.id.Public())); err == nil {
			d, err = vss.DealSubShares(h.share, l, r.t, len(r.parties), nil)
		}
	}
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Zero()
	payload, err := dealingPayload(h.id, nil, r.session, r.parties, &dealing{ctx: r.oldCtx, commitments: d.Commitments.Serialize(), shares: d.Shares})
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := envelope.NewSender(h.id, r.kind, r.session).Seal(roundDeal, envelope.Broadcast, payload, false)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// BenchmarkRedealRelay measures whole refresh and reshare ceremonies (every
// party, prepare and certify included) through a relay on loopback, one at
// a time: all parties share this machine's cores.
func BenchmarkRedealRelay(b *testing.B) {
	c := newClient(b)
	for _, mode := range []string{"refresh", "reshare"} {
		for _, tc := range benchCases {
			b.Run(fmt.Sprintf("%s/%d-of-%d", mode, tc.t, tc.n), func(b *testing.B) {
				_, hs := dealtKey(b, tc.t, tc.n)
				var lat []time.Duration
				for b.Loop() {
					var runs []redealRun
					if mode == "refresh" {
						runs = refreshRuns(hs, nil)
					} else {
						var set []*envelope.Identity
						for _, h := range hs {
							set = append(set, h.id)
						}
						runs = reshareRuns(hs, set, tc.t, nil)
					}
					start := time.Now()
					out := runRedeals(b, c, runs, 60*time.Second, nil)
					lat = append(lat, time.Since(start))
					for _, o := range out {
						if o.err != nil {
							b.Fatal(o.err)
						}
					}
				}
				reportLatency(b, lat)
			})
		}
	}
}
