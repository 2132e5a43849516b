// Package ceremony runs quorumd's multi-party protocols as per-party state
// machines over an untrusted Transport (in production, the relay): the key
// import (Feldman-verified dealing of an existing key, then an all-party
// transcript confirmation) and BIP445 FROST signing with identifiable abort.
//
// Every message is an envelope (mpc/envelope): signed by its sender's
// identity key, encrypted when point-to-point, bound to the session. A party
// that detects a failure broadcasts an abort naming the culprit where it is
// known, so the others stop at once rather than at their deadline. Nothing is
// committed unless every party confirmed the same transcript.
package ceremony
