// Package ceremony runs quorumd's multi-party protocols as per-party state
// machines over an untrusted Transport (in production, the relay): the key
// import (one signed, Feldman-verified deal of an existing key) and BIP445
// FROST signing with identifiable abort.
//
// The machinery is shared: party.go sends and receives typed rounds
// (dropping and counting what a relay could have dropped anyway),
// certify.go is prepare-then-certify (a party signs the transcript only
// after it durably stored its share, and N signatures are the success
// certificate, CertEq), recovery.go makes a stuck party ready from any
// party's recovery data. Every message is an envelope (mpc/envelope):
// signed by its sender's identity key, encrypted when point-to-point,
// bound to the session. A party that detects a failure broadcasts an
// abort, or a refusal when it never signed, naming the culprit where it is
// known. No party succeeds unless every party durably stored its share
// (docs/protocol.md).
package ceremony
