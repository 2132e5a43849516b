package daemon

import (
	"sort"

	"github.com/quorumd/quorumd/mpc/ceremony"
)

// writeDropped exposes the envelopes ceremonies dropped instead of aborting
// (forged, undecodable, from non-members, replayed, mistyped): a rise means
// someone is posting into rooms.
func writeDropped(cw *countWriter) {
	d := ceremony.DroppedEnvelopes()
	reasons := make([]string, 0, len(d))
	for r := range d {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	cw.printf("# HELP quorumd_ceremony_envelopes_dropped_total Ceremony envelopes dropped unread, by reason.\n")
	cw.printf("# TYPE quorumd_ceremony_envelopes_dropped_total counter\n")
	for _, r := range reasons {
		cw.printf("quorumd_ceremony_envelopes_dropped_total{reason=%s} %d\n", q(r), d[r])
	}
}
