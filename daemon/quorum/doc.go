// Package quorum is the daemon's key-slot service: it joins the key store,
// the HSM and the ceremonies into the daemon.Keys, daemon.Rooms and
// daemon.Ceremonies the HTTP layer calls.
//
// Secrets (identity keys, shares) exist in the clear only inside a call:
// opened from the HSM, used, zeroed. Every sealed blob is bound by its AAD
// to its key_id, owner, purpose (and, for a share, the participant id), so
// a blob moved to another record fails to open.
package quorum
